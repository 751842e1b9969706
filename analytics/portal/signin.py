"""One-time sign-in links to the partner portal: a signed token naming the partner, a nonce and
its expiry, remembered in Redis so that it signs in at most once.

Opening a link only looks at it (link scanners and chat previews fetch URLs); the page's "Sign in"
button spends it, with one atomic `SET … XX GET` that marks it used and tells whether it still was
unused.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import orjson
from redis.asyncio import Redis

from edge.clock import now_ms
from edge.redis_client import as_text
from edge.registry.model import PARTNER_ID_PATTERN
from edge.signing import TokenSigner

PURPOSE: Final = "portal-signin"
LINK_LIFETIME_MS: Final = 24 * 3600 * 1000
# Every portal key shares a hash tag: on Redis Cluster they sit on one slot, apart from the rest.
PREFIX: Final = "invite:{portal}:"
USED: Final = "used"
_NONCE_BYTES: Final = 18
_NONCE_LENGTH: Final = 24  # base64url of 18 bytes, no padding


class LinkState(enum.Enum):
    """What a presented sign-in token is, as the page tells the person holding it."""

    VALID = "valid"
    FORGED = "forged"  # not a token this service signed (or mangled in transit)
    EXPIRED = "expired"
    USED = "used"
    UNKNOWN = "unknown"  # signed, unexpired, yet not on record (Redis lost it, or flushed)


@dataclass(frozen=True)
class SignInToken:
    partner_id: str
    nonce: str
    issued_ms: int
    expires_ms: int


def signin_key(nonce: str) -> str:
    return f"{PREFIX}signin:{nonce}"


def token_signer(secrets_: Iterable[str]) -> TokenSigner:
    return TokenSigner(PURPOSE, secrets_)


def read_token(signer: TokenSigner, token: str) -> SignInToken | None:
    """The claims of a token this service signed, else None (whatever else it is)."""
    payload = signer.unsign(token)
    if payload is None:
        return None
    try:
        claims = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(claims, dict) or set(claims) != {"p", "n", "iat", "exp"}:
        return None
    partner_id, nonce, issued, expires = claims["p"], claims["n"], claims["iat"], claims["exp"]
    if not (isinstance(partner_id, str) and PARTNER_ID_PATTERN.fullmatch(partner_id)
            and isinstance(nonce, str) and len(nonce) == _NONCE_LENGTH
            and type(issued) is int and type(expires) is int and 0 < issued < expires):
        return None
    return SignInToken(partner_id, nonce, issued, expires)


class SignInLinks:
    """Issues sign-in tokens and spends them, once."""

    def __init__(self, redis: Redis, signer: TokenSigner) -> None:
        self._redis = redis
        self._signer = signer

    async def issue(self, partner_id: str) -> tuple[str, int]:
        """A new token for the partner and when it expires (ms)."""
        issued = now_ms()
        nonce = secrets.token_urlsafe(_NONCE_BYTES)
        expires = issued + LINK_LIFETIME_MS
        token = self._signer.sign(orjson.dumps(
            {"p": partner_id, "n": nonce, "iat": issued, "exp": expires}))
        await self._redis.set(signin_key(nonce), partner_id, px=LINK_LIFETIME_MS)
        return token, expires

    async def look(self, token: str) -> tuple[LinkState, SignInToken | None]:
        """What the token is now, without spending it."""
        claims = read_token(self._signer, token)
        if claims is None:
            return LinkState.FORGED, None
        if claims.expires_ms <= now_ms():
            return LinkState.EXPIRED, claims
        stored = await self._redis.get(signin_key(claims.nonce))
        return _state(claims, stored), claims

    async def spend(self, token: str) -> tuple[LinkState, SignInToken | None]:
        """Spend the token: VALID at most once for each token, whoever asks at the same time."""
        claims = read_token(self._signer, token)
        if claims is None:
            return LinkState.FORGED, None
        if claims.expires_ms <= now_ms():
            return LinkState.EXPIRED, claims
        # XX: never writes a key that is not there; GET: the value it had, atomically.
        before = await self._redis.set(signin_key(claims.nonce), USED, xx=True, keepttl=True,
                                       get=True)
        return _state(claims, before), claims


def _state(claims: SignInToken, stored: object) -> LinkState:
    if stored is None:
        return LinkState.UNKNOWN
    value = as_text(stored)
    if value == USED:
        return LinkState.USED
    return LinkState.VALID if value == claims.partner_id else LinkState.UNKNOWN
