"""Who asks the analytics API: the admin token, or a partner token that sees its own subtree."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from starlette.requests import Request

from edge.config import Settings
from edge.errors import Unauthorized
from edge.partners import PARTNER_ID_PATTERN
from edge.signing import TokenSigner, token_matches


@dataclass(frozen=True)
class Viewer:
    """Who asks: the admin (partner_id None) or one partner, who sees its own subtree."""

    partner_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.partner_id is None


class ViewerAuth:
    def __init__(self, settings: Settings) -> None:
        self._admin_tokens = settings.admin_tokens
        self._partner_tokens = TokenSigner("partner-api", settings.secrets)

    def viewer(self, request: Request) -> Viewer:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send 'Authorization: Bearer <token>' (admin or partner token)")
        if token_matches(token, self._admin_tokens):
            return Viewer(partner_id=None)
        partner_id = self._partner_id(token)
        if partner_id is None:
            raise Unauthorized(
                "the bearer token is neither the admin token nor a partner token issued by "
                "POST /api/partners/{partnerId}/tokens"
            )
        return Viewer(partner_id=partner_id)

    def _partner_id(self, token: str) -> str | None:
        payload = self._partner_tokens.unsign(token)
        if payload is None:
            return None
        try:
            claims = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        partner_id = claims.get("p") if isinstance(claims, dict) else None
        if isinstance(partner_id, str) and PARTNER_ID_PATTERN.fullmatch(partner_id):
            return partner_id
        return None
