"""The partners and links API, behind the admin bearer token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.config import Settings
from edge.errors import BadRequest, InvalidInput, Unauthorized
from edge.registry.partners import PartnerRegistry, check_partner_id
from edge.signing import token_matches
from edge.sso.notify import SIGNATURE_HEADER, webhook_secret
from edge.sso.outbox import Outbox

MAX_BODY_BYTES = 64 * 1024
MAX_DEAD_LETTERS_SHOWN = 1000

Endpoint = Callable[[Request], Awaitable[Response]]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <token>'")
    return token.strip()


def bearer_only(
    accepted: Callable[[Settings], Iterable[str]], refusal: str
) -> Callable[[Endpoint], Endpoint]:
    """Guard an endpoint with one of the (rotating) bearer tokens `accepted` picks from Settings."""

    def guard(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            if not token_matches(bearer_token(request), accepted(request.app.state.settings)):
                raise Unauthorized(refusal)
            return await endpoint(request)

        return guarded

    return guard


admin_only = bearer_only(
    lambda settings: settings.admin_tokens,
    "the bearer token is not the admin token (INVITE_ADMIN_TOKEN)",
)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _registry(request: Request) -> PartnerRegistry:
    registry: PartnerRegistry = request.app.state.registry
    return registry


def public_base_url(request: Request) -> str:
    configured: str | None = request.app.state.settings.public_url
    return configured or str(request.base_url).rstrip("/")


@admin_only
async def put_partner(request: Request) -> Response:
    partner_id = request.path_params["partner_id"]
    partner, created = await _registry(request).upsert(partner_id, await json_body(request))
    return JSONResponse(partner.to_json(), status_code=201 if created else 200)


@admin_only
async def get_partner(request: Request) -> Response:
    partner = await _registry(request).get(check_partner_id(request.path_params["partner_id"]))
    return JSONResponse(partner.to_json())


@admin_only
async def create_link(request: Request) -> Response:
    partner_id = check_partner_id(request.path_params["partner_id"])
    link = await _registry(request).create_link(partner_id, await json_body(request))
    return JSONResponse(link.to_json(public_base_url(request)), status_code=201)


@admin_only
async def get_link(request: Request) -> Response:
    link = await _registry(request).get_link(request.path_params["code"])
    return JSONResponse(link.to_json(public_base_url(request)))


@admin_only
async def partner_webhook(request: Request) -> Response:
    """What a partner needs to verify its notifications: the URL, the header, its secret."""
    partner = await _registry(request).get(check_partner_id(request.path_params["partner_id"]))
    settings: Settings = request.app.state.settings
    return JSONResponse({
        "partnerId": partner.partner_id,
        "webhookUrl": partner.webhook_url,
        "signatureHeader": SIGNATURE_HEADER,
        "secret": webhook_secret(settings.signing_secret, partner.partner_id),
    })


@admin_only
async def dead_letters(request: Request) -> Response:
    """Outbox jobs given up on (cTrader or a webhook refused them), newest first."""
    raw_limit = request.query_params.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_DEAD_LETTERS_SHOWN:
        raise InvalidInput(f"limit must be a whole number 1..{MAX_DEAD_LETTERS_SHOWN}")
    outbox: Outbox = request.app.state.outbox
    return JSONResponse({
        "queued": await outbox.queued(),
        "deadLetters": await outbox.dead_letters(int(raw_limit)),
    })


routes = [
    Route("/api/partners/{partner_id}", put_partner, methods=["PUT"]),
    Route("/api/partners/{partner_id}", get_partner, methods=["GET"]),
    Route("/api/partners/{partner_id}/links", create_link, methods=["POST"]),
    Route("/api/links/{code}", get_link, methods=["GET"]),
    Route("/api/partners/{partner_id}/webhook", partner_webhook, methods=["GET"]),
    Route("/api/ctrader/dead-letters", dead_letters, methods=["GET"]),
]
