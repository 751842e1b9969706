"""`GET|HEAD /r/{code}`: resolve, classify, attribute, record, redirect. Plain ASGI, no framework.

Never a 5xx: unknown or malformed codes get the 404 page (or the fallback URL), and anything
unexpected is answered by a safety net that redirects to the registration page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import uuid_utils
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from edge.clock import now_ms
from edge.config import Settings
from edge.hotpath.anonymize import IpAnonymizer, ip_prefix
from edge.hotpath.attribution import Attribution, AttributionCodec, cookie_value
from edge.hotpath.classify import Kind, classify
from edge.hotpath.clicks import ClickWriter
from edge.hotpath.location import Destination, location_with
from edge.hotpath.metrics import EdgeMetrics
from edge.hotpath.resolver import LinkResolver, ResolvedLink
from edge.registry.links import is_code_syntax

log = logging.getLogger("invite.redirect")

# A cold-cache lookup gives up after this: redirect unattributed rather than keep a person waiting.
REGISTRY_LOOKUP_TIMEOUT_S = 0.3
MAX_LOGGED_CODE = 64
MAX_USER_AGENT = 512
MAX_REFERER = 1024
MAX_ACCEPT_LANGUAGE = 128
MAX_COUNTRY = 8

NOT_FOUND_PAGE = (
    b"<!doctype html><html lang=en><meta charset=utf-8><title>Link not found</title>"
    b"<meta name=robots content=noindex>"
    b"<body style='font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto'>"
    b"<h1>This link does not exist</h1><p>Check the address you were given, or ask the person "
    b"who shared it for a new link.</p></body></html>"
)
_PURPOSE_HEADERS = {b"sec-purpose", b"purpose", b"x-purpose", b"x-moz"}
_NO_STORE = (b"cache-control", b"private, no-store")


class RedirectHandler:
    def __init__(
        self,
        settings: Settings,
        resolver: LinkResolver,
        writer: ClickWriter,
        attribution: AttributionCodec,
        metrics: EdgeMetrics,
    ) -> None:
        self._settings = settings
        self._resolver = resolver
        self._writer = writer
        self._attribution = attribution
        self._metrics = metrics
        self._ips = IpAnonymizer(settings.signing_secret)
        self._first_model = settings.edge.attribution_model == "first"
        self._country_header = (settings.edge.country_header or "").encode() or None
        self._ip_header = (settings.edge.client_ip_header or "").encode() or None
        self._default = Destination.parse(settings.edge.registration_url)
        self._fallback = settings.edge.fallback_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._handle(scope, send)
        except Exception:
            log.exception("redirect failed; answered by the safety net")
            self._metrics.errors.inc()
            await _send(send, 302, [(b"location", self._settings.edge.registration_url.encode()),
                                    _NO_STORE])

    async def _handle(self, scope: Scope, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _send(send, 405, [(b"allow", b"GET, HEAD"), _NO_STORE])
            return
        user_agent = referer = accept_language = country = cookie = forwarded = ""
        purpose = ""
        for name, value in scope["headers"]:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"cookie":
                cookie = value.decode("latin-1")
            elif name == b"referer":
                referer = value.decode("latin-1")
            elif name == b"accept-language":
                accept_language = value.decode("latin-1")
            elif name in _PURPOSE_HEADERS:
                purpose += value.decode("latin-1") + ","
            elif name == self._country_header:
                country = value.decode("latin-1")
            elif name == self._ip_header:
                forwarded = value.decode("latin-1")
        user_agent = user_agent[:MAX_USER_AGENT]  # bounds the classifier cost and its cache
        kind = classify(method, user_agent, purpose)

        code = scope["path"][3:]
        link: ResolvedLink | None = None
        outcome = "orphan"
        if is_code_syntax(code):
            found, link = self._resolver.cached(code)
            if not found:
                try:
                    link = await asyncio.wait_for(
                        self._resolver.resolve(code), REGISTRY_LOOKUP_TIMEOUT_S
                    )
                except (RedisError, OSError, TimeoutError):
                    outcome = "unresolved"  # the registry is unreachable: redirect, unattributed
            if link is not None:
                outcome = link.outcome

        ts = now_ms()
        click_id = str(uuid_utils.uuid7())
        previous = None
        if cookie and kind is Kind.PERSON:
            token = cookie_value(cookie)
            previous = self._attribution.decode(token, ts) if token else None

        headers: list[tuple[bytes, bytes]] = [_NO_STORE]
        if outcome == "orphan" or outcome == "disabled":  # a disabled link answers like no link
            if self._fallback:
                status = 302
                headers.append((b"location", self._fallback.encode()))
            else:
                status = 404
                headers.append((b"content-type", b"text/html; charset=utf-8"))
        else:
            status = 302
            if link is None:
                params = "clickId=" + click_id
            else:
                # Click ids are hex and dashes: nothing to escape.
                params = link.params_head + click_id + link.params_tail
            sets_cookie = (
                link is not None and outcome == "credited" and kind is Kind.PERSON
                and not (self._first_model and previous is not None)
            )
            if sets_cookie and link is not None:
                visitor = previous.visitor_id if previous else click_id
                token = self._attribution.encode(Attribution(
                    partner_id=link.partner_id, campaign=link.campaign, click_id=click_id,
                    visitor_id=visitor, clicked_at_ms=ts,
                    expires_at_ms=ts + self._attribution.max_age_ms,
                ))
                headers.append((b"set-cookie", self._attribution.set_cookie_header(token)))
            destination = link.destination if link is not None else self._default
            query = scope.get("query_string", b"").decode("latin-1")
            location = location_with(destination, query, params)
            headers.append((b"location", location.encode("utf-8")))

        client = scope.get("client")
        ip = forwarded.split(",", 1)[0].strip() if forwarded else (client[0] if client else "")
        event: dict[str, Any] = {
            "click_id": click_id,
            "ts": ts,
            "code": link.code if link is not None else code[:MAX_LOGGED_CODE],
            "kind": kind.value,
            "outcome": outcome,
            "partner_id": link.partner_id if link else "",
            "ancestors": link.ancestors if link else (),
            "campaign": (link.campaign or "") if link else "",
            "sub_id": (link.sub_id or "") if link else "",
            "destination": link.destination_url if link else "",
            "ip_hash": self._ips.hash(ip, ts),
            "ip_prefix": ip_prefix(ip) if ip else "",
            "user_agent": user_agent,
            "referer": referer[:MAX_REFERER],
            "accept_language": accept_language[:MAX_ACCEPT_LANGUAGE],
            "country": country[:MAX_COUNTRY].upper(),
            "first_click": previous is None,
            "visitor_id": previous.visitor_id if previous else click_id,
            "method": method,
        }
        # Counted as lost by the writer if even the spool failed; the person still gets their page.
        with contextlib.suppress(OSError):
            await self._writer.record(orjson.dumps(event))
        self._metrics.redirect(kind, outcome)
        body = NOT_FOUND_PAGE if status == 404 and method == "GET" else b""
        await _send(send, status, headers, body)


async def _send(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
