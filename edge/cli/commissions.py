"""`invite commissions recompute --period YYYY-MM`: compute an open month's ledger again from
the events, with a progress bar; the same lines come out when nothing changed.

The work runs where the ledger's engine is: in this process, or (an `invite run` holds the
embedded engine on this data dir) in that server, asked over its admin API. Either way its
progress is read from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import httpx
import orjson
from redis.exceptions import RedisError
from tqdm import tqdm

from edge.cli.launch import EDGE_URL_FILE, running_edge_url
from edge.cli.operations import redis_url_of
from edge.cli.servers import ANALYTICS_EXTRA
from edge.config import Settings
from edge.errors import CliError, InviteError
from edge.logs import redact_url
from edge.redis_client import open_redis
from edge.shutdown import cancel_within

POLL_S: Final = 0.5
REQUEST_TIMEOUT_S: Final = 3_600.0


def recompute_command(settings: Settings, period: str) -> int:
    try:
        from analytics.commissions.months import check_period
    except ImportError:
        raise CliError(ANALYTICS_EXTRA) from None
    check_period(period)
    return asyncio.run(_recompute(settings, period))


async def _recompute(settings: Settings, period: str) -> int:
    from analytics.clickhouse import open_clickhouse
    from analytics.commissions.periods import Periods, progress_key

    redis = open_redis(redis_url_of(settings), timeout_s=30.0)
    key = progress_key(period)
    await redis.delete(key)
    bar = tqdm(total=1, desc=f"computing {period}", unit="day")
    watcher = asyncio.get_running_loop().create_task(_follow(redis, key, bar))
    try:
        if settings.analytics.embedded and (settings.data_dir / EDGE_URL_FILE).exists():
            result = await _ask_server(settings, period)
        else:
            url = settings.analytics.clickhouse_url
            print(f"computing on {redact_url(url)}", flush=True)
            if settings.analytics.embedded:  # nothing else has it open: bring it up to date
                await asyncio.to_thread(_migrate, settings)
            report = await Periods(redis, lambda: open_clickhouse(url),
                                   settings.currency).recompute(period)
            result = {"period": period, "computed": report.months}
    except InviteError as exc:
        raise CliError(exc.message) from None
    finally:
        await cancel_within((watcher,))
        bar.close()
        await redis.aclose()
    print(f"{period} computed again: {orjson.dumps(result).decode()}")
    return 0


def _migrate(settings: Settings) -> None:
    from analytics.clickhouse import open_clickhouse
    from analytics.retention import migrate_with_retention

    client = open_clickhouse(settings.analytics.clickhouse_url)
    try:
        migrate_with_retention(client, settings.analytics.clicks_retention_days)
    finally:
        client.close()


async def _ask_server(settings: Settings, period: str) -> dict[str, Any]:
    """The running `invite run` holds the embedded engine: it does the work."""
    base = running_edge_url(settings.data_dir)
    print(f"asking the running server at {base} to compute {period}", flush=True)
    token = settings.tokens.admin[0]
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S) as client:
        try:
            response = await client.post(f"/api/periods/{period}/recompute",
                                         headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise CliError(f"the server at {base} did not answer ({type(exc).__name__}): is "
                           "`invite run` still up?") from None
    body: dict[str, Any] = response.json() if response.content else {}
    if response.status_code != 200:
        message = body.get("error", {}).get("message", response.text[:200])
        raise CliError(f"the server refused: {message}")
    return body


async def _follow(redis: Any, key: str, bar: tqdm) -> None:
    while True:
        # The bar only: a missed reading shows at the next.
        with contextlib.suppress(RedisError, ValueError, KeyError):
            raw = await redis.get(key)
            if raw:
                progress = orjson.loads(raw)
                bar.total = max(int(progress["total"]), 1)
                bar.n = min(int(progress["done"]), bar.total)
                bar.refresh()
        await asyncio.sleep(POLL_S)
