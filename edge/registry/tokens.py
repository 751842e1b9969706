"""Partner tokens for the analytics API: issued by the admin, revoked all at once per partner.

A token carries the partner and when it was issued (ms). Revoking stamps the partner with
`tokens_not_before`: every token issued earlier is refused by the analytics API as soon as the
partners table in ClickHouse has the stamp (the batcher copies registry changes within seconds).
"""

from __future__ import annotations

import time

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.registry.admin import admin_only
from edge.registry.partners import CHANGES_CHANNEL, PartnerRegistry, check_partner_id, partner_key
from edge.signing import TokenSigner

TOKENS_NOT_BEFORE = "tokens_not_before"  # registry hash field, ms since the epoch
# Tokens issued before the ms clock were stamped in seconds.
_SECONDS_BEFORE = 10**11


def issue(signer: TokenSigner, partner_id: str, now_ms: int | None = None) -> str:
    issued = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return signer.sign(orjson.dumps({"p": partner_id, "iat": issued}))


def claims(signer: TokenSigner, token: str) -> tuple[str, int] | None:
    """The partner id and issue time (ms) of a genuine token, else None."""
    payload = signer.unsign(token)
    if payload is None:
        return None
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(decoded, dict):
        return None
    partner_id, issued = decoded.get("p"), decoded.get("iat", 0)
    if not isinstance(partner_id, str) or not isinstance(issued, int):
        return None
    return partner_id, issued * 1000 if issued < _SECONDS_BEFORE else issued


@admin_only
async def issue_partner_token(request: Request) -> Response:
    """A token for the analytics API that sees this partner's subtree only."""
    registry: PartnerRegistry = request.app.state.registry
    partner = await registry.get(check_partner_id(request.path_params["partner_id"]))
    token = issue(request.app.state.partner_token_signer, partner.partner_id)
    return JSONResponse({"token": token, "partnerId": partner.partner_id}, status_code=201)


@admin_only
async def revoke_partner_tokens(request: Request) -> Response:
    """Every token issued to this partner until now stops working; issue a new one after."""
    registry: PartnerRegistry = request.app.state.registry
    partner = await registry.get(check_partner_id(request.path_params["partner_id"]))
    not_before = time.time_ns() // 1_000_000 + 1
    await request.app.state.redis.hset(
        partner_key(partner.partner_id),
        mapping={TOKENS_NOT_BEFORE: not_before, "updated_at": not_before},
    )
    await request.app.state.redis.publish(CHANGES_CHANNEL, f"p:{partner.partner_id}")
    return JSONResponse({"partnerId": partner.partner_id, "tokensNotBefore": not_before})


routes = [
    Route("/api/partners/{partner_id}/tokens", issue_partner_token, methods=["POST"]),
    Route("/api/partners/{partner_id}/tokens", revoke_partner_tokens, methods=["DELETE"]),
]
