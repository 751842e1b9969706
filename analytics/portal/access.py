"""Who is on a portal page: the session its cookie names, still live in Redis, of a partner that
is still active and whose tokens were not revoked since; every form of that session carries its
CSRF token. Pages get a Visit; everything else gets a page saying why not."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from clickhouse_connect.driver.exceptions import DatabaseError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from analytics.portal.sessions import COOKIE, Session, Sessions, cookie_header, csrf_matches
from analytics.portal.web import error_notice, notice, read_form
from edge.config import Settings
from edge.errors import InviteError, Unavailable
from edge.redis_client import open_redis
from edge.registry.destinations import DestinationPolicy
from edge.registry.keys import partner_key
from edge.registry.model import Partner
from edge.registry.partners import TOKENS_NOT_BEFORE, PartnerRegistry, read_hash
from edge.spelling import is_ascii_digits

log = logging.getLogger("invite.portal")

REDIS_TIMEOUT_S: Final = 5.0
Endpoint = Callable[[Request], Awaitable[Response]]


class SignedOut(Exception):
    """The request has no live session (never had, ended, or its partner may no longer use it)."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message


def not_signed_in() -> SignedOut:
    # A new one each time: a raised exception keeps its traceback, and with it the request's frames.
    return SignedOut(
        "Sign in to your partner portal",
        "You are not signed in, or your session has ended (sessions last 12 hours). Open the "
        "sign-in link your account manager sent you, or ask them for a new one. If you have "
        "just signed in and came here from another app, open the portal again below.",
    )


@dataclass
class Visit:
    """A signed-in request: its session, its partner and the registry to read it with."""

    request: Request
    redis: Redis
    session: Session
    partner: Partner
    registry: PartnerRegistry
    base_url: str
    form: dict[str, str] = field(default_factory=dict)

    @property
    def partner_id(self) -> str:
        return self.partner.partner_id


def base_url(settings: Settings, request: Request) -> str:
    """Where links and the portal are reached: INVITE_PUBLIC_URL, else this request's base."""
    return settings.edge.public_url or str(request.base_url).rstrip("/")


async def current_partner(redis: Redis, partner_id: str, since_ms: int) -> Partner:
    """The partner, if it may still use a session or link from `since_ms`; SignedOut if not."""
    fields = await read_hash(redis, partner_key(partner_id))
    if not fields:
        raise SignedOut("No such partner", "This partner no longer exists. Ask your account "
                        "manager about your account.")
    partner = Partner.from_hash(partner_id, fields)
    if not partner.active:
        raise SignedOut("Your account is suspended", "Your partner account is suspended, so the "
                        "portal is closed to it. Ask your account manager about it.")
    not_before = fields.get(TOKENS_NOT_BEFORE, "")
    if is_ascii_digits(not_before) and int(not_before) > since_ms:
        raise SignedOut("Your access was revoked", "Your account manager revoked the access "
                        "given before now. Ask them for a new sign-in link.")
    return partner


class Access:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._destinations = DestinationPolicy(settings.edge.allowed_destinations)

    @contextlib.asynccontextmanager
    async def redis(self) -> AsyncIterator[Redis]:
        if not self.settings.redis_url:
            raise Unavailable("INVITE_REDIS_URL is not set: the portal keeps sessions in Redis")
        client = open_redis(self.settings.redis_url, timeout_s=REDIS_TIMEOUT_S)
        try:
            yield client
        finally:
            await client.aclose()

    def registry(self, redis: Redis) -> PartnerRegistry:
        return PartnerRegistry(redis, self.settings.signing_secret, self._destinations)

    def sessions(self, redis: Redis) -> Sessions:
        return Sessions(redis, self.settings.secrets)

    def clear_cookie(self) -> str:
        return cookie_header("", 0, secure=self.settings.edge.cookie_secure)

    async def visit(self, request: Request, redis: Redis) -> Visit:
        sessions = self.sessions(redis)
        session = await sessions.find(request.cookies.get(COOKIE))
        if session is None:
            raise not_signed_in()
        try:
            partner = await current_partner(redis, session.partner_id, session.created_ms)
        except SignedOut:
            await sessions.end(session)
            raise
        return Visit(request, redis, session, partner, self.registry(redis),
                     base_url(self.settings, request))

    def signed_in(self, handler: Callable[[Visit], Awaitable[Response]]) -> Endpoint:
        """A page (GET) or a form (POST, its CSRF token checked first) of a live session."""

        async def endpoint(request: Request) -> Response:
            async def run() -> Response:
                async with self.redis() as redis:
                    visit = await self.visit(request, redis)
                    if request.method == "POST":
                        visit.form = await read_form(request)
                        if not csrf_matches(visit.session, visit.form.get("csrf")):
                            return notice(
                                request, 403, "This form has expired",
                                "The form did not carry this session's security token (it was "
                                "opened in an older session, or sent from another site). Open "
                                "the page again and resend it.", code="csrf_failed",
                                action=("/portal", "Back to the overview"))
                    return await handler(visit)

            return await self.answer(request, run)

        return endpoint

    def public(self, handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return await self.answer(request, lambda: handler(request))

        return endpoint

    async def answer(self, request: Request, run: Callable[[], Awaitable[Response]]) -> Response:
        """The page, or a page saying what stood in the way (never a 5xx for what was sent)."""
        try:
            return await run()
        except SignedOut as out:
            return notice(request, 401, out.title, out.message, code="signed_out",
                          action=("/portal", "Open the portal"),
                          headers={"Set-Cookie": self.clear_cookie()})
        except InviteError as error:
            return error_notice(request, error)
        except RedisError as error:
            log.warning("portal: redis unavailable (%s)", type(error).__name__)
            return notice(request, 503, "Unavailable right now", "The portal cannot reach its "
                          "store right now. Retry in a minute.", code="redis_unavailable")
        except DatabaseError:
            log.exception("portal: a ClickHouse question failed")
            return notice(request, 500, "Something went wrong", "Your figures could not be read."
                          " Retry in a minute; if it persists, tell your account manager.",
                          code="query_failed")
