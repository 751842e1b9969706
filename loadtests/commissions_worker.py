"""The worker's pass in `make bench-commissions`: a redis-server of the benchmark's own, the plan
in the commissions store, and the worker's state as a worker that has already seen every credited
row leaves it (so a pass does what it does in steady state: pick up the users whose credited
events changed, bring their lines up to date, and look at the tiers their months touch).

The state is written with the worker's own key and field names; should they change, the first
pass would compute every month again, and `check_steady` says so instead of timing that.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from redis.asyncio import Redis

from analytics.clickhouse import Client
from analytics.commissions import inputs
from analytics.commissions.store import CommissionStore
from analytics.commissions.worker import STATE_KEY, CommissionsWorker, PassReport
from loadtests.commissions_data import PLAN_ID, plan_version


def seed(redis_url: str, client: Client) -> None:
    """The plan in the store, and the worker's marks: everything credited so far was seen."""
    async def work(redis: Redis) -> None:
        await CommissionStore(redis).add_version(PLAN_ID, plan_version().terms, 0)
        mark = client.query("SELECT max(toUnixTimestamp64Milli(inserted_at)) "
                            "FROM invite.events_credited").result_rows[0][0]
        await redis.hset(STATE_KEY, mapping=dict[Any, Any]({
            "credited": int(mark), "plans": orjson.dumps({PLAN_ID: 1}),
            "symbols": ",".join(inputs.traded_symbols(client)), "history": "",
            "timeline": "1"}))
    asyncio.run(_with_redis(redis_url, work))


def one_pass(redis_url: str, client: Client, currency: str) -> PassReport:
    """One pass of the worker, holding the ledger lock as `run()` does."""
    async def work(redis: Redis) -> PassReport:
        worker = CommissionsWorker(redis, client, currency)
        lock = CommissionStore(redis).ledger_lock(blocking_timeout=10)
        if not await lock.acquire():
            raise RuntimeError("the ledger lock is held by someone else")
        try:
            return await worker.pass_locked(lock)
        finally:
            await lock.release()
    report: PassReport = asyncio.run(_with_redis(redis_url, work))
    return report


def check_steady(report: PassReport, period: str) -> str:
    """'' when the pass only brought users up to date; else what it did besides."""
    if period in report.months:
        return (f"the pass computed {period} again whole: the seeded worker state no longer "
                "matches analytics/commissions/worker.py")
    return ""


async def _with_redis(url: str, work: Any) -> Any:
    redis = Redis.from_url(url)
    try:
        return await work(redis)
    finally:
        await redis.aclose()
