"""The edge application factory: the redirect hot path in front, Starlette for the rest."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.config import RESTARTS_FILE, Settings
from edge.description import EDGE
from edge.docs import DOCS, docs_routes
from edge.errors import ConfigError
from edge.events import routes as events
from edge.events.intake import EventIntake
from edge.gc_tuning import tune_gc
from edge.hotpath import attribution
from edge.hotpath.access_log import AccessLog
from edge.hotpath.attribution import AttributionCodec, attribution_context_app
from edge.hotpath.clicks import CLICK_WRITE_TIMEOUT_S, ClickWriter
from edge.hotpath.metrics import CONTENT_TYPE_LATEST, EdgeMetrics
from edge.hotpath.redirect import RedirectHandler
from edge.hotpath.resolver import LinkResolver
from edge.hotpath.spool import Spool
from edge.logs import configure_logging, redact_url
from edge.openapi import Description, document
from edge.redis_client import open_redis
from edge.registry import admin, tokens
from edge.registry.destinations import DestinationPolicy
from edge.registry.partners import PartnerRegistry
from edge.registry.upkeep import prepare_registry
from edge.shutdown import cancel_within
from edge.sso.service import create_sso
from edge.web import EXCEPTION_HANDLERS, Check, healthz, readiness

log = logging.getLogger("invite.app")

REGISTRY_TIMEOUT_S = 2.0
HOT_PATH_TIMEOUT_S = 0.25
SHUTDOWN_DRAIN_S = 5.0
# The analytics checks of `invite run` may wait for an insert on the shared engine.
READY_TIMEOUT_S = 5.0
DEMO_PAGE = Path(__file__).parent / "templates" / "register.html"


class EdgeApp:
    """Routes `/r/…` straight to the redirect handler and the rest to Starlette."""

    # What __call__ answers before Starlette sees the request (the description covers them too).
    FRONT_ROUTES = (("/r/{code}", ("GET", "HEAD")), ("/attribution", ("GET",)))

    def __init__(
        self,
        redirect: RedirectHandler,
        attribution_app: ASGIApp,
        rest: Starlette,
        edge_metrics: EdgeMetrics,
        access_log: AccessLog | None = None,
    ) -> None:
        self._redirect: ASGIApp = redirect
        self._attribution = attribution_app
        self._rest: ASGIApp = rest
        self.rest = rest
        self.state = rest.state
        # Bound once: a labelled lookup per request would cost more than the increment.
        count = edge_metrics.requests.labels
        self._count_redirect = count("redirect").inc
        self._count_attribution = count("attribution").inc
        self._count_api = count("api").inc
        self._count_other = count("other").inc
        if access_log is not None:  # wrapped only when asked: the hot path pays nothing else
            self._redirect = access_log.wrap(self._redirect)
            self._attribution = access_log.wrap(self._attribution)
            self._rest = access_log.wrap(self._rest)

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
        await self._rest(scope, receive, send)


@dataclass(frozen=True)
class Extension:
    """More routes and a lifespan for the same process (the analytics of `invite run`)."""

    routes: Sequence[BaseRoute] = ()
    lifespan: Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]] | None = None
    ready_checks: Mapping[str, Check] = field(default_factory=dict)  # joined to /readyz
    description: Description = field(default_factory=Description)  # of `routes`, for /docs


async def readyz(request: Request) -> Response:
    writer: ClickWriter = request.app.state.writer
    checks: dict[str, Check] = {"redis": request.app.state.redis.ping}
    checks.update(request.app.state.ready_checks)
    return await readiness(checks, {"spoolDepth": writer.spool_depth}, timeout_s=READY_TIMEOUT_S)


async def metrics(request: Request) -> Response:
    edge_metrics: EdgeMetrics = request.app.state.metrics
    return Response(edge_metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def demo_register(request: Request) -> Response:
    # Like a broker's page on another subdomain, the demo asks the edge's public address.
    settings: Settings = request.app.state.settings
    attribution_url = f"{settings.edge.public_url or ''}/attribution"
    page = DEMO_PAGE.read_text().replace("{{ATTRIBUTION_URL}}", html.escape(attribution_url))
    return HTMLResponse(page)


def create_app(settings: Settings, extension: Extension | None = None) -> EdgeApp:
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
    destinations = DestinationPolicy(settings.edge.allowed_destinations)
    registry = PartnerRegistry(redis, settings.signing_secret, destinations)
    edge_metrics = EdgeMetrics(settings.private_redis_dir / RESTARTS_FILE)
    writer = ClickWriter(click_redis, Spool(settings.spool_dir), edge_metrics)
    resolver = LinkResolver(
        hot_redis, feed, PartnerRegistry(hot_redis, settings.signing_secret, destinations),
        settings.edge.registration_url,
    )
    attribution_codec = AttributionCodec(settings.edge, settings.secrets)
    sso = create_sso(settings, redis, registry, attribution_codec, edge_metrics.registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await writer.start()
        await sso.start()
        watcher = asyncio.get_running_loop().create_task(resolver.watch_changes())
        upkeep = asyncio.get_running_loop().create_task(prepare_registry(registry))
        try:
            async with contextlib.AsyncExitStack() as extensions:
                if extension.lifespan is not None:
                    await extensions.enter_async_context(extension.lifespan(app))
                # Everything allocated so far lives for the process; the hot path allocates
                # many short-lived objects (docs/benchmarks.md).
                tune_gc()
                log.info("edge ready; clicks go to stream on %s", redact_url(redis_url))
                yield
        finally:
            await cancel_within((watcher, upkeep))
            await sso.close(SHUTDOWN_DRAIN_S)
            await writer.close(SHUTDOWN_DRAIN_S)
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
            *events.routes,
            *attribution.routes,
            *sso.routes,
            *extension.routes,
            *docs_routes(document(
                EDGE + extension.description + DOCS, title="invite-edge",
                summary="Referral links, attribution, registrations and funnel events"
                + (", with analytics and commissions" if extension.description.paths else ""),
            )),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    state = rest.state
    state.settings = settings
    state.ready_checks = extension.ready_checks
    state.redis = redis
    state.registry = registry
    state.writer = writer
    state.resolver = resolver
    state.metrics = edge_metrics
    state.metrics_registry = edge_metrics.registry
    state.attribution_codec = attribution_codec
    state.event_intake = EventIntake(redis)
    state.partner_token_signer = tokens.token_signer(settings.secrets)
    state.outbox = sso.outbox
    state.registrations = sso.registrations
    state.referral_resolver = sso.referrals
    redirect = RedirectHandler(settings, resolver, writer, attribution_codec, edge_metrics)
    return EdgeApp(
        redirect, attribution_context_app(settings.edge, attribution_codec), rest, edge_metrics,
        AccessLog(settings.edge.client_ip_header) if settings.edge.access_log else None,
    )
