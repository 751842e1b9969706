"""Closing a month (its lines frozen, each partner told its statement is ready), marking it paid,
and computing an open month again on request, with its progress in Redis for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Final

import orjson
from clickhouse_connect.driver.client import Client
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import RedisError

from analytics.commissions import reads
from analytics.commissions.months import end_ms, month_of
from analytics.commissions.schema import DATABASE
from analytics.commissions.store import CommissionStore, PeriodState
from analytics.commissions.worker import CommissionsWorker, PassReport
from edge.clock import iso_utc, now_ms
from edge.errors import Conflict, InvalidInput, Unavailable
from edge.registry.keys import PLANS_PREFIX
from edge.streams import NOTIFICATION_STREAM

LOCK_WAIT_S: Final = 120.0
MAX_REFERENCE: Final = 128
PROGRESS_TTL_S: Final = 86_400
ClientFactory = Callable[[], Client]


def progress_key(period: str) -> str:
    return f"{PLANS_PREFIX}progress:{period}"


class Periods:
    def __init__(self, redis: Redis, open_client: ClientFactory, currency: str) -> None:
        self._redis = redis
        self._store = CommissionStore(redis)
        self._open_client = open_client
        self._currency = currency

    async def close(self, period: str) -> dict[str, Any]:
        """Freeze a month that has ended: the ledger catches up first, so every event that has
        arrived is in; each partner with lines gets `commission.statement`."""
        if now_ms() < end_ms(period):
            raise Conflict(f"{period} has not ended: close it from {iso_utc(end_ms(period))} on")
        states = await self._store.periods()
        if period in states:
            return {**states[period].to_json(), "alreadyClosed": True}

        async def work(client: Client, lock: Lock) -> dict[str, Any]:
            async with self._store.periods_lock():
                state = PeriodState(period, "closed", now_ms())
                await self._store.set_period(state)
            await asyncio.to_thread(_set_status, client, period, state)
            partners = await asyncio.to_thread(reads.partner_totals, client, period)
            for partner_id, lines, amount in partners:
                await self._redis.xadd(NOTIFICATION_STREAM, {"e": orjson.dumps({
                    "type": "commission.statement", "partnerId": partner_id, "period": period,
                    "lines": lines, "amount": reads.cents(amount), "currency": self._currency,
                })})
            total = sum((amount for _, _, amount in partners), start=Decimal(0))
            return {**state.to_json(), "partners": len(partners),
                    "lines": sum(lines for _, lines, _ in partners), "amount": reads.cents(total),
                    "currency": self._currency}

        closed: dict[str, Any] = await self._with_ledger(work)
        return closed

    async def paid(self, period: str, reference: Any) -> dict[str, Any]:
        if not isinstance(reference, str) or not 1 <= len(reference) <= MAX_REFERENCE \
                or not reference.isprintable():
            raise InvalidInput(f"reference must be 1 to {MAX_REFERENCE} printable characters "
                               "(the payout's reference, e.g. a bank batch id)")
        async with self._store.periods_lock():
            states = await self._store.periods()
            state = states.get(period)
            if state is None:
                raise Conflict(f"{period} is open: close it first (POST /api/periods/{period}"
                               "/close)")
            if state.status == "paid":
                if state.reference == reference:
                    return {**state.to_json(), "alreadyPaid": True}
                raise Conflict(f"{period} was already marked paid with another reference")
            state = PeriodState(period, "paid", state.closed_at, now_ms(), reference)
            await self._store.set_period(state)

        async def work(client: Client, lock: Lock) -> dict[str, Any]:
            await asyncio.to_thread(_set_status, client, period, state)
            return state.to_json()

        paid: dict[str, Any] = await self._with_ledger(work, catch_up=False)
        return paid

    async def recompute(self, period: str) -> PassReport:
        """Compute an open month again whole, its progress in Redis (`progress_key`)."""
        if period in await self._store.closed_periods():
            raise Conflict(f"{period} is closed: its lines are frozen (late changes land in the "
                           "next open month as adjustments)")
        if period > month_of(now_ms()):
            raise InvalidInput(f"{period} has not begun: there is nothing to compute yet")
        key = progress_key(period)
        loop = asyncio.get_running_loop()

        async def report(done: int, total: int) -> None:
            with contextlib.suppress(RedisError):
                await self._redis.set(key, orjson.dumps({"done": done, "total": total}),
                                      ex=PROGRESS_TTL_S)

        def progress(done: int, total: int) -> None:  # called from the ledger's thread
            asyncio.run_coroutine_threadsafe(report(done, total), loop)

        reports: list[PassReport] = []

        async def work(client: Client, lock: Lock) -> None:
            worker = CommissionsWorker(self._redis, client, self._currency)
            reports.append(await worker.pass_locked(lock, progress, months=(period,)))

        await self._with_ledger(work, catch_up=False)
        await self._redis.set(key, orjson.dumps({"done": 1, "total": 1, "finished": True}),
                              ex=PROGRESS_TTL_S)
        return reports[0]

    async def _with_ledger(
        self, work: Callable[[Client, Lock], Awaitable[Any]], catch_up: bool = True
    ) -> Any:
        """Run `work` on a client of its own under the ledger lock, after catching the ledger
        up with what has arrived (a pass) unless told not to."""
        lock = self._store.ledger_lock(blocking_timeout=LOCK_WAIT_S)
        if not await lock.acquire():
            raise Unavailable("the ledger is busy (a month is being computed): retry in a minute")
        try:
            client = await asyncio.to_thread(self._open_client)
            try:
                if catch_up:
                    await CommissionsWorker(self._redis, client, self._currency).pass_locked(lock)
                return await work(client, lock)
            finally:
                await asyncio.to_thread(client.close)
        finally:
            with contextlib.suppress(RedisError):
                await lock.release()


def _set_status(client: Client, period: str, state: PeriodState) -> None:
    """Stamp the month's lines with its status, and record it in `commission_periods`."""
    # `period` is YYYY-MM and the status one of ours (checked where they came in).
    client.command(
        f"ALTER TABLE {DATABASE}.commissions UPDATE status = '{state.status}' "
        f"IN PARTITION '{period}' WHERE status != '{state.status}'",
        settings={"mutations_sync": 2})
    client.insert(
        f"{DATABASE}.commission_periods",
        [[period, state.status, state.closed_at, state.paid_at, state.reference, now_ms()]],
        column_names=["period", "status", "closed_at", "paid_at", "reference", "updated_at"],
        column_type_names=["String", "LowCardinality(String)", "DateTime64(3, 'UTC')",
                           "DateTime64(3, 'UTC')", "String", "DateTime64(3, 'UTC')"])
