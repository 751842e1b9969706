"""The partners, links and partner-tokens API, behind the admin bearer token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.registry import tokens
from edge.registry.edits import LinkEdit, PartnerEdit
from edge.registry.model import check_partner_id
from edge.registry.partners import PartnerRegistry
from edge.web import admin_only, json_body, public_base_url


def _registry(request: Request) -> PartnerRegistry:
    registry: PartnerRegistry = request.app.state.registry
    return registry


@admin_only
async def put_partner(request: Request) -> Response:
    partner_id = request.path_params["partner_id"]
    edit = PartnerEdit.from_json(await json_body(request))
    partner, created = await _registry(request).upsert(partner_id, edit)
    return JSONResponse(partner.to_json(), status_code=201 if created else 200)


@admin_only
async def get_partner(request: Request) -> Response:
    partner = await _registry(request).get(check_partner_id(request.path_params["partner_id"]))
    return JSONResponse(partner.to_json())


@admin_only
async def create_link(request: Request) -> Response:
    partner_id = check_partner_id(request.path_params["partner_id"])
    edit = LinkEdit.from_json(await json_body(request))
    link = await _registry(request).create_link(partner_id, edit)
    return JSONResponse(link.to_json(public_base_url(request)), status_code=201)


@admin_only
async def get_link(request: Request) -> Response:
    link = await _registry(request).get_link(request.path_params["code"])
    return JSONResponse(link.to_json(public_base_url(request)))


@admin_only
async def issue_partner_token(request: Request) -> Response:
    """A token for the analytics API that sees this partner's subtree only."""
    partner = await _registry(request).get(check_partner_id(request.path_params["partner_id"]))
    token = tokens.issue(request.app.state.partner_token_signer, partner.partner_id)
    return JSONResponse({"token": token, "partnerId": partner.partner_id}, status_code=201)


@admin_only
async def revoke_partner_tokens(request: Request) -> Response:
    """Every token issued to this partner until now stops working; issue a new one after."""
    partner_id = check_partner_id(request.path_params["partner_id"])
    not_before = await _registry(request).revoke_tokens(partner_id)
    return JSONResponse({"partnerId": partner_id, "tokensNotBefore": not_before})


routes = [
    Route("/api/partners/{partner_id}", put_partner, methods=["PUT"]),
    Route("/api/partners/{partner_id}", get_partner, methods=["GET"]),
    Route("/api/partners/{partner_id}/links", create_link, methods=["POST"]),
    Route("/api/links/{code}", get_link, methods=["GET"]),
    Route("/api/partners/{partner_id}/tokens", issue_partner_token, methods=["POST"]),
    Route("/api/partners/{partner_id}/tokens", revoke_partner_tokens, methods=["DELETE"]),
]
