"""Who asks the analytics API: the admin token, or a partner token that sees its own subtree."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from clickhouse_connect.driver.client import Client
from starlette.requests import Request

from analytics.partner_scope import tokens_not_before
from edge.config import Settings
from edge.errors import Unauthorized
from edge.registry import tokens as partner_tokens
from edge.registry.model import PARTNER_ID_PATTERN
from edge.signing import token_matches

# A revocation reaches the API within the partners sync (seconds) plus this.
REVOCATION_CACHE_S: Final = 5.0
REVOCATION_CACHE_SIZE: Final = 10_000


@dataclass(frozen=True)
class Viewer:
    """Who asks: the admin (partner_id None) or one partner, who sees its own subtree."""

    partner_id: str | None
    issued_at_ms: int = 0  # a partner token's issue time

    @property
    def is_admin(self) -> bool:
        return self.partner_id is None


class ViewerAuth:
    """The bearer token of a request; a partner token's revocation is checked with the question
    (it needs ClickHouse: see TokenRevocations)."""

    def __init__(self, settings: Settings) -> None:
        self._admin_tokens = settings.tokens.admin
        self._partner_tokens = partner_tokens.token_signer(settings.secrets)

    def viewer(self, request: Request) -> Viewer:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send 'Authorization: Bearer <token>' (admin or partner token)")
        if token_matches(token, self._admin_tokens):
            return Viewer(partner_id=None)
        found = partner_tokens.claims(self._partner_tokens, token)
        if found is None or not PARTNER_ID_PATTERN.fullmatch(found[0]):
            raise Unauthorized(
                "the bearer token is neither the admin token nor a partner token issued by "
                "POST /api/partners/{partnerId}/tokens"
            )
        return Viewer(partner_id=found[0], issued_at_ms=found[1])


class TokenRevocations:
    """When each partner's tokens were last revoked, from `invite.partners`, cached briefly."""

    def __init__(self, ttl_s: float = REVOCATION_CACHE_S) -> None:
        self._ttl = ttl_s
        self._known: dict[str, tuple[int, float]] = {}

    def check(self, client: Client, viewer: Viewer) -> None:
        """Raise Unauthorized for a partner token issued before its partner's revocation."""
        if viewer.partner_id is None:
            return
        now = time.monotonic()
        cached = self._known.get(viewer.partner_id)
        if cached is None or now - cached[1] > self._ttl:
            cached = (tokens_not_before(client, viewer.partner_id), now)
            if len(self._known) >= REVOCATION_CACHE_SIZE:
                self._known.clear()
            self._known[viewer.partner_id] = cached
        if viewer.issued_at_ms < cached[0]:
            raise Unauthorized(
                f"this token of partner {viewer.partner_id} was revoked; ask the admin for a "
                "new one (POST /api/partners/{partnerId}/tokens)"
            )
