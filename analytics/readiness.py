"""What /readyz asks of the analytics side: ClickHouse answers, and the batchers keep up."""

from __future__ import annotations

from collections.abc import Callable

from clickhouse_connect.driver.client import Client
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from analytics.batcher import GROUP
from analytics.sinks import SINKS
from edge.config import Settings
from edge.errors import Unavailable
from edge.redis_client import open_redis
from edge.streams import backlog
from edge.web import Check

LAG_CHECK_TIMEOUT_S = 2.0


def clickhouse_check(provider: Callable[[], Client]) -> Check:
    async def clickhouse() -> object:
        return await run_in_threadpool(lambda: provider().query("SELECT 1"))

    return clickhouse


def batcher_check(settings: Settings) -> Check | None:
    """Unavailable, with the reason, when a stream's oldest unacknowledged entry is older than
    INVITE_READY_MAX_LAG_S; None without INVITE_REDIS_URL (nothing to look at)."""
    url = settings.redis_url
    if not url:
        return None
    limit_s = settings.analytics.ready_max_lag_s

    async def batcher() -> object:
        redis = open_redis(url, timeout_s=LAG_CHECK_TIMEOUT_S)
        behind = []
        try:
            for sink in SINKS:
                entries, age_ms = await backlog(redis, sink.stream, GROUP)
                if age_ms > limit_s * 1000:
                    behind.append(f"{sink.stream}: {entries} entries, the oldest "
                                  f"{age_ms / 1000:.0f} s old")
        except (RedisError, OSError) as exc:
            # The API answers from ClickHouse without Redis; the edge's /readyz reports Redis.
            return f"unknown: Redis did not answer ({type(exc).__name__})"
        finally:
            await redis.aclose()
        if behind:
            raise Unavailable(
                f"the batcher is more than {limit_s} s behind ({'; '.join(behind)}): check that "
                "`invite batcher` runs and ClickHouse takes its inserts"
            )
        return "ok"

    return batcher
