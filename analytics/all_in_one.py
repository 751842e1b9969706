"""App factories that put the batcher and the analytics API in one process with the engine.

The embedded engine (chDB) lets one process open its data dir, so the batcher and the API that
reads it share a process: `invite run` adds both to the edge, `invite analytics` runs them alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from clickhouse_connect.driver.client import Client
from starlette.applications import Starlette

from analytics.api import create_analytics_app, create_analytics_routes
from analytics.clickhouse import open_clickhouse
from analytics.description import ANALYTICS
from analytics.pipeline import run_batcher
from analytics.readiness import batcher_check, clickhouse_check
from analytics.retention import migrate_with_retention
from edge.app import EdgeApp, Extension, create_app
from edge.config import Settings
from edge.errors import ClickHouseUnavailable
from edge.logs import configure_logging
from edge.shutdown import cancel_within, wait_within

log = logging.getLogger("invite.analytics")

BATCHER_STOP_S = 30.0


class SharedClient:
    """The process's ClickHouse client, opened in the lifespan, handed to each question."""

    def __init__(self) -> None:
        self.client: Client | None = None

    def __call__(self) -> Client:
        if self.client is None:
            raise ClickHouseUnavailable("ClickHouse is not open yet: retry in a moment")
        return self.client


def pipeline_lifespan(
    settings: Settings, shared: SharedClient, *, run_pipeline: bool
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """Open the client (migrating an embedded engine) and, if asked, run the batcher beside."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = await asyncio.to_thread(open_clickhouse, settings.analytics.clickhouse_url)
        if settings.analytics.embedded:
            applied = await asyncio.to_thread(
                migrate_with_retention, client, settings.analytics.clicks_retention_days
            )
            if applied:
                log.info("applied schema migrations %s", applied)
        shared.client = client
        stop = asyncio.Event()
        batcher: asyncio.Task[object] | None = None
        if run_pipeline:
            # Under `invite run` the batchers' metrics join the edge's /metrics.
            metrics = getattr(app.state, "metrics_registry", None)
            batcher = asyncio.get_running_loop().create_task(run_batcher(
                settings, migrate_schema=False, registry=metrics, install_signal_handlers=False,
                stop=stop,
            ), name="batcher")
        try:
            yield
        finally:
            stop.set()
            if batcher is not None:
                if not await wait_within(batcher, BATCHER_STOP_S):
                    log.warning("the batcher did not stop within %.0f s; its unacknowledged "
                                "clicks stay in the stream for the next start", BATCHER_STOP_S)
                    await cancel_within((batcher,))
                elif not batcher.cancelled() and batcher.exception() is not None:
                    log.error("the batcher failed", exc_info=batcher.exception())
            shared.client = None
            await asyncio.to_thread(client.close)

    return lifespan


def create_all_in_one_app(settings: Settings) -> EdgeApp:
    """`invite run`: the edge, the batcher and the analytics API in one process."""
    shared = SharedClient()
    checks = {"clickhouse": clickhouse_check(shared)}
    lag = batcher_check(settings)
    if lag is not None:
        checks["batcher"] = lag
    return create_app(settings, Extension(
        routes=create_analytics_routes(settings, shared),
        lifespan=pipeline_lifespan(settings, shared, run_pipeline=True),
        ready_checks=checks,
        description=ANALYTICS,
    ))


def create_analytics_only_app(settings: Settings) -> Starlette:
    """`invite analytics`: the API, plus the batcher when the engine is embedded."""
    configure_logging(settings.log_format)
    shared = SharedClient()
    app = create_analytics_app(settings, shared)
    app.router.lifespan_context = pipeline_lifespan(
        settings, shared, run_pipeline=settings.analytics.embedded
    )
    return app
