"""`invite batcher`: the batchers of the click, conversion and event streams, crediting, the
commissions ledger and the partners sync, in one process until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from prometheus_client import CollectorRegistry

from analytics.batcher import Batcher
from analytics.batcher_metrics import BatcherStats
from analytics.clickhouse import open_clickhouse
from analytics.commissions.worker import CommissionsWorker
from analytics.events.crediting import Crediting
from analytics.partners_sync import PartnersSync
from analytics.retention import migrate_with_retention
from analytics.sinks import CLICKS, CONVERSIONS, EVENTS
from edge.config import Settings
from edge.errors import ConfigError
from edge.gc_tuning import tune_gc
from edge.logs import redact_url
from edge.redis_client import open_redis

log = logging.getLogger("invite.batcher")

PROGRESS_INTERVAL_S = 10.0
CLICKHOUSE_OPEN_RETRY_S = 5.0


async def run_batcher(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    migrate_schema: bool | None = None,
    install_signal_handlers: bool = True,
    stop: asyncio.Event | None = None,
    progress_interval_s: float = PROGRESS_INTERVAL_S,
) -> BatcherStats:
    """`invite batcher`: the streams into ClickHouse until SIGINT/SIGTERM (or `stop`), then flush
    and exit; returns the clicks batcher's totals.

    Reads INVITE_REDIS_URL's streams into INVITE_CLICKHOUSE_URL (settings.batcher says how),
    migrates the schema first when embedded (or when migrate_schema is True), keeps the partners
    dimension in sync, and logs progress every progress_interval_s.
    """
    url = settings.redis_url
    if not url:
        raise ConfigError(
            "INVITE_REDIS_URL is not set: the batcher reads the stream of the edge's Redis"
        )
    clickhouse_url = settings.analytics.clickhouse_url
    batcher_settings = settings.batcher
    redis = open_redis(url, timeout_s=max(5.0, batcher_settings.flush_interval_s * 3), decode=False)
    # The ledger's reads (history, plans) decode; its passes may hold a lock for minutes.
    redis_text = open_redis(url, timeout_s=30.0)
    feed = open_redis(url, timeout_s=5.0, feed=True, decode=False)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    try:
        clickhouse = await _open_clickhouse_retrying(clickhouse_url, stop)
        if clickhouse is None:
            return BatcherStats()
        if settings.analytics.embedded if migrate_schema is None else migrate_schema:
            applied = await asyncio.to_thread(
                migrate_with_retention, clickhouse, settings.analytics.clicks_retention_days
            )
            if applied:
                log.info("applied schema migrations %s", applied)
        tune_gc()
        batcher = Batcher(redis, clickhouse, batcher_settings, CLICKS, registry=registry)
        conversions = Batcher(
            redis, clickhouse, batcher_settings, CONVERSIONS, registry=batcher.metrics.registry
        )
        events = Batcher(
            redis, clickhouse, batcher_settings, EVENTS, registry=batcher.metrics.registry
        )
        crediting = Crediting(redis, clickhouse)
        # Its own client: a month computed again holds it for a minute, and an embedded
        # client runs one statement at a time (the batchers' inserts must not wait).
        ledger_client = await asyncio.to_thread(open_clickhouse, clickhouse_url)
        commissions = CommissionsWorker(redis_text, ledger_client, settings.currency)
        partners = PartnersSync(
            redis, clickhouse, interval_s=batcher_settings.partners_sync_s, feed=feed
        )
        tasks = [
            loop.create_task(batcher.run(), name="batcher"),
            loop.create_task(conversions.run(), name="conversions-batcher"),
            loop.create_task(events.run(), name="events-batcher"),
            loop.create_task(crediting.run(), name="crediting"),
            loop.create_task(commissions.run(), name="commissions"),
            loop.create_task(partners.run(), name="partners-sync"),
        ]
        progress = loop.create_task(
            _report_progress((batcher, conversions, events), progress_interval_s),
            name="progress",
        )
        log.info("batcher %s reading %s, %s and %s (group %s) into %s", batcher.consumer,
                 batcher.stream, conversions.stream, events.stream, batcher.group,
                 redact_url(clickhouse_url))
        stopped = loop.create_task(stop.wait())
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for worker in (batcher, conversions, events, crediting, commissions, partners):
            worker.stop()
        await asyncio.gather(*tasks)  # a failure of any surfaces here
        progress.cancel()
        stopped.cancel()
        await asyncio.gather(progress, stopped, return_exceptions=True)
        _log_progress((batcher, conversions, events))
        await asyncio.to_thread(clickhouse.close)
        await asyncio.to_thread(ledger_client.close)
        return batcher.stats
    finally:
        if install_signal_handlers:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        await redis.aclose()
        await redis_text.aclose()
        await feed.aclose()


async def _open_clickhouse_retrying(url: str, stop: asyncio.Event) -> Client | None:
    """The client, once ClickHouse answers; None if stopped first. A bad URL fails at once."""
    while True:
        try:
            return await asyncio.to_thread(open_clickhouse, url)
        except ClickHouseError as exc:
            log.warning("ClickHouse at %s is not reachable (%s); retrying in %.0f s",
                        redact_url(url), type(exc).__name__, CLICKHOUSE_OPEN_RETRY_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CLICKHOUSE_OPEN_RETRY_S)
            return None


async def _report_progress(batchers: tuple[Batcher, ...], interval_s: float) -> None:
    """A summary line every interval_s, but only when something changed since the last one."""
    last = _progress(batchers)
    while True:
        await asyncio.sleep(interval_s)
        now = _progress(batchers)
        if now != last:
            _log_progress(batchers)
            last = now


def _progress(batchers: tuple[Batcher, ...]) -> tuple[tuple[int, int, int, int], ...]:
    return tuple(
        (b.stats.inserted, b.stats.duplicates, b.stats.dead_letters, b.stats.lag)
        for b in batchers
    )


def _log_progress(batchers: tuple[Batcher, ...]) -> None:
    log.info("; ".join(
        f"{b.sink.name} inserted {b.stats.inserted}, duplicates skipped {b.stats.duplicates}, "
        f"dead letters {b.stats.dead_letters}, lag {b.stats.lag}"
        for b in batchers
    ))
