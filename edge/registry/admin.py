"""The partners, links and partner-tokens API, behind the admin bearer token."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.registry import tokens
from edge.registry.edits import LinkEdit, LinkPatch, PartnerEdit
from edge.registry.model import check_partner_id
from edge.registry.paging import LinkQuery, PartnerQuery, page_json, parse_depth, query_parameters
from edge.registry.partners import PartnerRegistry
from edge.registry.qr import DEFAULT_QR_SIZE, MAX_QR_SIZE, MIN_QR_SIZE, render_qr
from edge.spelling import whole_number
from edge.web import admin_only, json_body, public_base_url

# The image of a link's URL changes only with INVITE_PUBLIC_URL; the ETag tells.
QR_CACHE_CONTROL = "private, max-age=86400"


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
async def list_partners(request: Request) -> Response:
    query = PartnerQuery.from_params(request.query_params.multi_items())
    page = await _registry(request).list_partners(query)
    return JSONResponse(page_json(page, [summary.to_json() for summary in page.items]))


@admin_only
async def list_links(request: Request) -> Response:
    partner_id = check_partner_id(request.path_params["partner_id"])
    query = LinkQuery.from_params(request.query_params.multi_items())
    page = await _registry(request).list_links(partner_id, query)
    base = public_base_url(request)
    return JSONResponse(page_json(page, [link.to_json(base) for link in page.items]))


@admin_only
async def partner_tree(request: Request) -> Response:
    partner_id = check_partner_id(request.path_params["partner_id"])
    depth = parse_depth(request.query_params.multi_items())
    return JSONResponse((await _registry(request).subtree(partner_id, depth)).to_json())


@admin_only
async def patch_link(request: Request) -> Response:
    patch = LinkPatch.from_json(await json_body(request))
    link = await _registry(request).update_link(request.path_params["code"], patch)
    return JSONResponse(link.to_json(public_base_url(request)))


async def _link_qr(request: Request, image_format: str) -> Response:
    params = query_parameters(request.query_params.multi_items(), ("size",))
    size = (
        whole_number(params["size"], "size", MIN_QR_SIZE, MAX_QR_SIZE) if "size" in params
        else DEFAULT_QR_SIZE
    )
    link = await _registry(request).get_link(request.path_params["code"])
    url = link.to_json(public_base_url(request))["url"]
    image = await run_in_threadpool(render_qr, url, image_format, size)
    headers = {
        "Cache-Control": QR_CACHE_CONTROL,
        "ETag": image.etag,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{link.shown_code}.{image.extension}"',
    }
    if image.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(image.content, media_type=image.media_type, headers=headers)


@admin_only
async def link_qr_svg(request: Request) -> Response:
    return await _link_qr(request, "svg")


@admin_only
async def link_qr_png(request: Request) -> Response:
    return await _link_qr(request, "png")


@admin_only
async def alias_clashes(request: Request) -> Response:
    """Aliases taken from younger links when aliases stopped minding case (docs/notes)."""
    return JSONResponse({"items": await _registry(request).alias_clashes()})


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
    Route("/api/partners", list_partners, methods=["GET"]),
    Route("/api/partners/{partner_id}", put_partner, methods=["PUT"]),
    Route("/api/partners/{partner_id}", get_partner, methods=["GET"]),
    Route("/api/partners/{partner_id}/links", create_link, methods=["POST"]),
    Route("/api/partners/{partner_id}/links", list_links, methods=["GET"]),
    Route("/api/partners/{partner_id}/tree", partner_tree, methods=["GET"]),
    Route("/api/links/{code}", get_link, methods=["GET"]),
    Route("/api/links/{code}", patch_link, methods=["PATCH"]),
    Route("/api/links/{code}/qr.svg", link_qr_svg, methods=["GET"]),
    Route("/api/links/{code}/qr.png", link_qr_png, methods=["GET"]),
    Route("/api/alias-clashes", alias_clashes, methods=["GET"]),
    Route("/api/partners/{partner_id}/tokens", issue_partner_token, methods=["POST"]),
    Route("/api/partners/{partner_id}/tokens", revoke_partner_tokens, methods=["DELETE"]),
]
