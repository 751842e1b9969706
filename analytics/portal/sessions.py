"""Portal sessions: a signed cookie naming a random session id, a record of it in Redis (so that
signing out, or the record's 12 hours running out, ends it) holding the partner, when it began
and the CSRF token every form of the session carries."""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis

from analytics.portal.signin import PREFIX
from edge.clock import now_ms
from edge.redis_client import as_text
from edge.registry.model import PARTNER_ID_PATTERN
from edge.signing import TokenSigner
from edge.spelling import is_ascii_digits

PURPOSE: Final = "portal-session"
COOKIE: Final = "invite_portal"
COOKIE_PATH: Final = "/portal"
SESSION_SECONDS: Final = 12 * 3600
_SESSION_ID_BYTES: Final = 24
_CSRF_BYTES: Final = 24


@dataclass(frozen=True)
class Session:
    session_id: str  # base64url, the one spelling the cookie's payload has
    partner_id: str
    created_ms: int
    csrf: str


def session_key(session_id: str) -> str:
    return f"{PREFIX}session:{session_id}"


def csrf_matches(session: Session, presented: str | None) -> bool:
    """The form's token is the session's, compared in constant time."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"),
                               session.csrf.encode("ascii"))


def cookie_header(value: str, max_age: int, *, secure: bool, path: str = COOKIE_PATH,
                  name: str = COOKIE) -> str:
    """A Set-Cookie value: HttpOnly, SameSite=Strict, on the portal's path only."""
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly",
             "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


class Sessions:
    def __init__(self, redis: Redis, secrets_: Iterable[str]) -> None:
        self._redis = redis
        self._signer = TokenSigner(PURPOSE, secrets_)

    async def begin(self, partner_id: str) -> tuple[Session, str]:
        """A new session of the partner and the cookie value that names it."""
        raw_id = secrets.token_bytes(_SESSION_ID_BYTES)
        session = Session(
            session_id=base64.urlsafe_b64encode(raw_id).decode("ascii"),
            partner_id=partner_id, created_ms=now_ms(),
            csrf=secrets.token_urlsafe(_CSRF_BYTES),
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(session_key(session.session_id), mapping={
                "partner": partner_id, "created": str(session.created_ms), "csrf": session.csrf,
            })
            pipe.expire(session_key(session.session_id), SESSION_SECONDS)
            await pipe.execute()
        return session, self._signer.sign(raw_id)

    async def find(self, cookie: str | None) -> Session | None:
        """The live session a cookie names; None for a missing, forged or ended one."""
        if not cookie:
            return None
        raw_id = self._signer.unsign(cookie)
        if raw_id is None or len(raw_id) != _SESSION_ID_BYTES:
            return None
        session_id = base64.urlsafe_b64encode(raw_id).decode("ascii")
        stored: dict[Any, Any] = await self._redis.hgetall(session_key(session_id))
        fields = {as_text(name): as_text(value) for name, value in stored.items()}
        partner_id, created, csrf = (fields.get(k, "") for k in ("partner", "created", "csrf"))
        if not PARTNER_ID_PATTERN.fullmatch(partner_id) or not is_ascii_digits(created) or not csrf:
            return None
        return Session(session_id, partner_id, int(created), csrf)

    async def end(self, session: Session) -> None:
        await self._redis.delete(session_key(session.session_id))
