"""The signed attribution cookie and token, and the routes registration frontends call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from edge import clock
from edge.config import EdgeSettings
from edge.errors import BadRequest, InvalidInput
from edge.registry.model import PARTNER_ID_PATTERN
from edge.signing import MAX_TOKEN_LENGTH, TokenSigner
from edge.web import error_response, read_body

COOKIE_NAME = "invite_ref"
MAX_COOKIE_HEADER = 8192
MAX_TEXT = 128  # campaigns, click and visitor ids, as the edge writes them
# {"token": …}: a token is at most MAX_TOKEN_LENGTH characters.
VERIFY_BODY_LIMIT = 2 * MAX_TOKEN_LENGTH
LATEST_MS = 7_258_118_400_000  # 2200-01-01: times past it are no times this edge wrote


@dataclass(frozen=True, slots=True)
class Attribution:
    partner_id: str
    campaign: str | None
    click_id: str
    visitor_id: str
    clicked_at_ms: int
    expires_at_ms: int

    def to_json(self, token: str) -> dict[str, Any]:
        return {
            "partnerId": self.partner_id,
            "campaign": self.campaign,
            "clickId": self.click_id,
            "clickedAt": clock.iso_utc(self.clicked_at_ms),
            "expiresAt": clock.iso_utc(self.expires_at_ms),
            "token": token,
        }


class AttributionCodec:
    """Turns an Attribution into the cookie/token string and back, checking signature and expiry."""

    def __init__(self, settings: EdgeSettings, secrets: Iterable[str]) -> None:
        self._signer = TokenSigner("attribution", secrets)
        self._max_age = settings.attribution_seconds
        parts = [f"Max-Age={self._max_age}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if settings.cookie_domain:
            parts.append(f"Domain={settings.cookie_domain}")
        if settings.cookie_secure:
            parts.append("Secure")
        # Everything after the value is the same for every click: build it once.
        self._cookie_suffix = "; " + "; ".join(parts)

    @property
    def max_age_ms(self) -> int:
        return self._max_age * 1000

    def encode(self, attribution: Attribution) -> str:
        payload = {
            "p": attribution.partner_id,
            "k": attribution.click_id,
            "v": attribution.visitor_id,
            "t": attribution.clicked_at_ms,
            "e": attribution.expires_at_ms,
        }
        if attribution.campaign is not None:
            payload["c"] = attribution.campaign
        return self._signer.sign(orjson.dumps(payload))

    def decode(self, token: str, now_ms: int | None = None) -> Attribution | None:
        """The attribution in a token, or None when forged, malformed or expired."""
        payload = self._signer.unsign(token)
        if payload is None:
            return None
        try:
            fields = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        attribution = _checked(fields)
        now = clock.now_ms() if now_ms is None else now_ms
        if attribution is None or attribution.expires_at_ms <= now:
            return None
        return attribution

    def set_cookie_header(self, token: str) -> bytes:
        return f"{COOKIE_NAME}={token}{self._cookie_suffix}".encode("latin-1")


def _checked(fields: object) -> Attribution | None:
    """The attribution a signed payload holds, if every field has the type and range this edge
    writes (a genuine signature over absurd numbers is still no attribution)."""
    if not isinstance(fields, dict):
        return None
    partner_id, campaign, click_id = fields.get("p"), fields.get("c"), fields.get("k")
    visitor_id = fields.get("v", click_id)
    clicked_at, expires_at = fields.get("t"), fields.get("e")
    if not (
        isinstance(partner_id, str) and PARTNER_ID_PATTERN.fullmatch(partner_id)
        and (campaign is None or (isinstance(campaign, str) and len(campaign) <= MAX_TEXT))
        and isinstance(click_id, str) and 0 < len(click_id) <= MAX_TEXT
        and isinstance(visitor_id, str) and 0 < len(visitor_id) <= MAX_TEXT
        and type(clicked_at) is int and type(expires_at) is int
        and 0 <= clicked_at <= expires_at < LATEST_MS
    ):
        return None
    return Attribution(partner_id, campaign, click_id, visitor_id, clicked_at, expires_at)


def cookie_value(cookie_header: str) -> str | None:
    """The invite_ref value from a raw Cookie header; junk and oversize headers give None."""
    if not cookie_header or len(cookie_header) > MAX_COOKIE_HEADER:
        return None
    start = cookie_header.find(COOKIE_NAME + "=")
    while start != -1:
        if start == 0 or cookie_header[start - 1] in "; ":
            end = cookie_header.find(";", start)
            value = cookie_header[start + len(COOKIE_NAME) + 1 : end if end != -1 else None]
            return value.strip().strip('"') or None
        start = cookie_header.find(COOKIE_NAME + "=", start + 1)
    return None


def attribution_context(request: Request, codec: AttributionCodec) -> Response:
    token = cookie_value(request.headers.get("cookie", ""))
    attribution = codec.decode(token) if token else None
    if attribution is None or token is None:
        return Response(status_code=204, headers={"Cache-Control": "private, no-store"})
    return JSONResponse(
        attribution.to_json(token), headers={"Cache-Control": "private, no-store"}
    )


async def verify_token(request: Request) -> Response:
    codec: AttributionCodec = request.app.state.attribution_codec
    try:
        body = orjson.loads(await read_body(request, VERIFY_BODY_LIMIT))
    except orjson.JSONDecodeError:
        raise BadRequest("body is not JSON: send {\"token\": \"...\"}") from None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise InvalidInput("token is required: the string /attribution returned")
    attribution = codec.decode(token)
    if attribution is None:
        raise InvalidInput("token is invalid or expired")
    return JSONResponse(attribution.to_json(token))


def attribution_context_app(settings: EdgeSettings, codec: AttributionCodec) -> ASGIApp:
    """`GET /attribution` behind CORS that admits only the configured origins, with credentials."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            response: Response = error_response(
                405, "method_not_allowed", "use GET /attribution", headers={"Allow": "GET"}
            )
        else:
            response = attribution_context(Request(scope, receive), codec)
        await response(scope, receive, send)

    return CORSMiddleware(
        app,
        allow_origins=list(settings.allowed_origins),
        allow_credentials=True,
        allow_methods=["GET"],
        max_age=600,
    )


routes = [Route("/api/attribution/verify", verify_token, methods=["POST"])]
