"""The edge application factory: the redirect hot path in front, Starlette for everything else."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.backoff import RetryPolicy
from edge.config import CLICK_WRITE_TIMEOUT_S, SHUTDOWN_DRAIN_S, Settings
from edge.errors import ConfigError, InviteError
from edge.hotpath import attribution
from edge.hotpath.attribution import AttributionCodec, attribution_context_app
from edge.hotpath.clicks import ClickWriter
from edge.hotpath.metrics import CONTENT_TYPE_LATEST, EdgeMetrics
from edge.hotpath.redirect import RedirectHandler
from edge.hotpath.resolver import LinkResolver
from edge.hotpath.spool import Spool
from edge.logs import configure_logging
from edge.redis_client import open_redis
from edge.registry import admin
from edge.registry import tokens as partner_tokens
from edge.registry.links import DestinationPolicy
from edge.registry.partners import PartnerRegistry
from edge.signing import TokenSigner
from edge.sso import hooks
from edge.sso.ctrader import CTraderClient
from edge.sso.http_pool import HttpPool
from edge.sso.notify import PartnerNotifier
from edge.sso.outbox import Outbox
from edge.sso.referrals import ReferralResolver
from edge.sso.registrations import AssignmentSender, Registrations

log = logging.getLogger("invite.app")

REGISTRY_TIMEOUT_S = 2.0
HOT_PATH_TIMEOUT_S = 0.25
READY_TIMEOUT_S = 1.0
GC_THRESHOLDS = (50_000, 20, 100)
WEBHOOK_TIMEOUT_S = 5.0
DEMO_PAGE = Path(__file__).parent / "templates" / "register.html"


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    writer: ClickWriter = request.app.state.writer
    try:
        await asyncio.wait_for(request.app.state.redis.ping(), READY_TIMEOUT_S)
    except (RedisError, OSError, TimeoutError) as exc:
        return JSONResponse(
            {"status": "unavailable", "redis": f"unreachable ({type(exc).__name__})",
             "spoolDepth": writer.spool_depth},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "redis": "ok", "spoolDepth": writer.spool_depth})


async def metrics(request: Request) -> Response:
    edge_metrics: EdgeMetrics = request.app.state.metrics
    return Response(edge_metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def demo_register(request: Request) -> Response:
    # Like a broker's page on another subdomain, the demo asks the edge's public address.
    settings: Settings = request.app.state.settings
    attribution_url = f"{settings.public_url or ''}/attribution"
    page = DEMO_PAGE.read_text().replace("{{ATTRIBUTION_URL}}", html.escape(attribution_url))
    return HTMLResponse(page)


async def _invite_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InviteError)
    return JSONResponse(exc.to_json(), status_code=exc.status)


async def http_error_json(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors (unknown route, wrong method) in the JSON error shape."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": {"code": code, "message": str(exc.detail)}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _redis_error(request: Request, exc: Exception) -> Response:
    log.warning("registry request failed: redis unavailable (%s)", type(exc).__name__)
    return JSONResponse(
        {"error": {"code": "redis_unavailable",
                   "message": "Redis did not answer; check INVITE_REDIS_URL and retry"}},
        status_code=503,
    )


class EdgeApp:
    """Routes `/r/…` straight to the redirect handler and the rest to Starlette."""

    def __init__(
        self,
        redirect: RedirectHandler,
        attribution_app: ASGIApp,
        rest: Starlette,
        edge_metrics: EdgeMetrics,
    ) -> None:
        self._redirect = redirect
        self._attribution = attribution_app
        self.rest = rest
        self.state = rest.state
        # Bound once: a labelled lookup per request would cost more than the increment.
        count = edge_metrics.requests.labels
        self._count_redirect = count("redirect").inc
        self._count_attribution = count("attribution").inc
        self._count_api = count("api").inc
        self._count_other = count("other").inc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/r/"):
                self._count_redirect()
                await self._redirect(scope, receive, send)
                return
            if path == "/attribution":
                self._count_attribution()
                await self._attribution(scope, receive, send)
                return
            if path.startswith("/api/"):
                self._count_api()
            else:
                self._count_other()
        await self.rest(scope, receive, send)


@dataclass(frozen=True)
class Extension:
    """More routes and a lifespan for the same process (the analytics of `invite run`)."""

    routes: Sequence[BaseRoute] = ()
    lifespan: Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]] | None = None


def create_app(settings: Settings | None = None, extension: Extension | None = None) -> EdgeApp:
    settings = settings or Settings.from_env()
    extension = extension or Extension()
    configure_logging(settings.log_format)
    if not settings.redis_url:
        raise ConfigError(
            "INVITE_REDIS_URL is not set: use `invite run` (starts a private Redis) "
            "or point it at your Redis, e.g. redis://127.0.0.1:6379/0"
        )
    redis_url = settings.redis_url
    redis = open_redis(redis_url, timeout_s=REGISTRY_TIMEOUT_S)
    hot_redis = open_redis(redis_url, timeout_s=HOT_PATH_TIMEOUT_S)
    click_redis = open_redis(redis_url, timeout_s=CLICK_WRITE_TIMEOUT_S, decode=False)
    feed = open_redis(redis_url, timeout_s=REGISTRY_TIMEOUT_S, feed=True)
    destinations = DestinationPolicy(settings.allowed_destinations)
    registry = PartnerRegistry(redis, settings.signing_secret, destinations)
    edge_metrics = EdgeMetrics()
    writer = ClickWriter(click_redis, Spool(settings.spool_dir), edge_metrics)
    resolver = LinkResolver(
        hot_redis, feed, PartnerRegistry(hot_redis, settings.signing_secret, destinations),
        settings.registration_url,
    )
    attribution_codec = AttributionCodec(settings)
    http = HttpPool()
    ctrader = CTraderClient.from_settings(settings, http)
    outbox = Outbox(
        redis, ctrader.policy, concurrency=settings.outbox_concurrency,
        claim_idle_ms=settings.outbox_claim_idle_ms, registry=edge_metrics.registry,
    )
    registrations = Registrations(redis, registry, outbox, ctrader)
    outbox.register(AssignmentSender(ctrader), registrations.on_assignment_accepted)
    outbox.register(PartnerNotifier(http, settings.signing_secret, _webhook_policy(ctrader.policy)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await writer.start()
        await outbox.start()
        watcher = asyncio.get_running_loop().create_task(resolver.watch_changes())
        try:
            async with contextlib.AsyncExitStack() as extensions:
                if extension.lifespan is not None:
                    await extensions.enter_async_context(extension.lifespan(app))
                # Everything allocated so far lives for the process: keep it out of the
                # collector's scans, and collect young objects less often (the hot path
                # allocates many short-lived ones; docs/benchmarks.md).
                gc.collect()
                gc.freeze()
                gc.set_threshold(*GC_THRESHOLDS)
                log.info("edge ready; clicks go to stream on %s", _redacted(redis_url))
                yield
        finally:
            watcher.cancel()
            await outbox.close(SHUTDOWN_DRAIN_S)
            await writer.close(SHUTDOWN_DRAIN_S)
            await http.aclose()
            await asyncio.gather(watcher, return_exceptions=True)
            for client in (redis, hot_redis, click_redis, feed):
                await client.aclose()
            log.info("edge stopped; clicks flushed")

    rest = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/demo/register", demo_register),
            *admin.routes,
            *partner_tokens.routes,
            *attribution.routes,
            *hooks.routes,
            *extension.routes,
        ],
        exception_handlers={
            InviteError: _invite_error,
            HTTPException: http_error_json,
            RedisError: _redis_error,
        },
        lifespan=lifespan,
    )
    rest.state.settings = settings
    rest.state.redis = redis
    rest.state.registry = registry
    rest.state.writer = writer
    rest.state.resolver = resolver
    rest.state.metrics = edge_metrics
    rest.state.attribution_codec = attribution_codec
    rest.state.partner_token_signer = TokenSigner("partner-api", settings.secrets)
    rest.state.outbox = outbox
    rest.state.registrations = registrations
    rest.state.referral_resolver = ReferralResolver(
        registry, attribution_codec, redis, settings.attribution_seconds * 1000
    )
    redirect = RedirectHandler(settings, resolver, writer, attribution_codec, edge_metrics)
    return EdgeApp(
        redirect, attribution_context_app(settings, attribution_codec), rest, edge_metrics
    )


def _webhook_policy(ctrader: RetryPolicy) -> RetryPolicy:
    """Partners' webhooks get cTrader's retry schedule with a shorter wait for an answer."""
    return RetryPolicy(ctrader.attempts, ctrader.base_s, ctrader.max_s,
                       min(ctrader.timeout_s, WEBHOOK_TIMEOUT_S))


def _redacted(url: str) -> str:
    """A Redis URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest
