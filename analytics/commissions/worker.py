"""Keeping the ledger up to date: a pass every few seconds in the batcher's process.

A pass, under the ledger lock (one writer across processes): reloads the plans when a version
was added (computing the open months it reaches again), the partners over time when the
registry's history grew (again the open months from the first moment that changed), each open
month's tiers when the month before it changed; then brings up to date every line of the users
whose credited events changed since the last pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import RedisError

from analytics.commissions import inputs
from analytics.commissions.ledger import Ledger, Progress
from analytics.commissions.months import month_of, months_between, next_month
from analytics.commissions.schema import DATABASE
from analytics.commissions.store import CommissionStore, PlanVersion
from analytics.commissions.timeline import (
    TimelineRow,
    partner_states,
    read_current,
    read_history,
    timeline_rows,
)
from edge.clock import now_ms
from edge.redis_client import as_text
from edge.registry.keys import HISTORY_STREAM, PLANS_PREFIX

log = logging.getLogger("invite.commissions")

INTERVAL_S: Final = 5.0
STATE_KEY: Final = PLANS_PREFIX + "ledger-state"
# Credited rows inserted while a pass reads may carry an earlier `inserted_at`.
OVERLAP_MS: Final = 5_000
LOCK_RENEW_S: Final = 60.0
# More credited rows changed in a pass than this: the open months are computed again whole.
MANY_CHANGES: Final = 500_000


@dataclass
class PassReport:
    months: list[str] = field(default_factory=list)  # computed again whole
    users: int = 0  # whose lines were brought up to date
    rows: int = 0


@dataclass
class _Inputs:
    plans: dict[str, list[PlanVersion]]
    closed: set[str]
    history: list[dict[str, Any]] | None  # None: unchanged since the last pass
    current: dict[str, dict[str, Any]]


class CommissionsWorker:
    def __init__(self, redis: Redis, clickhouse: Client, currency: str, *,
                 interval_s: float = INTERVAL_S) -> None:
        self._redis = redis
        self._clickhouse = clickhouse
        self._store = CommissionStore(redis)
        self._ledger = Ledger(clickhouse, currency)
        self._interval = interval_s
        self._stopping = asyncio.Event()
        self._failing = False
        self.passes = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """A pass every interval until stop(); failures are logged once and retried."""
        while not self._stopping.is_set():
            try:
                lock = self._store.ledger_lock(blocking_timeout=0)
                if await lock.acquire():
                    try:
                        await self.pass_locked(lock)
                    finally:
                        with contextlib.suppress(RedisError):
                            await lock.release()
                if self._failing:
                    log.info("the commissions ledger is updated again")
                    self._failing = False
            except (RedisError, OSError, ClickHouseError) as exc:
                if not self._failing:
                    log.warning("updating the commissions ledger failed (%s: %s); retrying",
                                type(exc).__name__, str(exc)[:300])
                    self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def pass_locked(self, lock: Lock, progress: Progress | None = None,
                          months: Sequence[str] = ()) -> PassReport:
        """One pass (the caller holds `lock`, the ledger lock); `months` are computed again
        whole whatever changed."""
        renew = asyncio.get_running_loop().create_task(_renew(lock))
        try:
            state = {as_text(k): as_text(v)
                     for k, v in (await self._redis.hgetall(STATE_KEY)).items()}
            last_history = await self._redis.xrevrange(HISTORY_STREAM, count=1)
            history_id = as_text(last_history[0][0]) if last_history else ""
            plans = await self._store.all_versions()
            closed = await self._store.closed_periods()
            seen_plans = orjson.loads(state.get("plans", "{}"))
            timeline_stale = (history_id != state.get("history", "")
                              or seen_plans != _versions(plans) or "timeline" not in state)
            found = _Inputs(plans, closed, None, {})
            if timeline_stale:
                found.history = await read_history(self._redis)
                found.current = await read_current(self._redis)
            report, marks = await asyncio.to_thread(
                self._pass, state, found, list(months), progress)
            marks.update({"history": history_id, "plans": orjson.dumps(_versions(plans)),
                          "timeline": "1"})
            await self._redis.hset(STATE_KEY, mapping=dict[Any, Any](marks))
        finally:
            renew.cancel()
            await asyncio.gather(renew, return_exceptions=True)
        self.passes += 1
        return report

    # In a worker thread: ClickHouse only.

    def _pass(self, state: Mapping[str, str], found: _Inputs, months: list[str],
              progress: Progress | None) -> tuple[PassReport, dict[str, Any]]:
        client = self._clickhouse
        report = PassReport()
        today = month_of(now_ms())
        dirty: set[str] = set(months)
        seen = orjson.loads(state.get("plans", "{}"))
        symbols = inputs.traded_symbols(client)
        if seen != _versions(found.plans) or state.get("symbols") != ",".join(symbols):
            inputs.write_plans(client, found.plans, symbols)
            for plan_id, versions in found.plans.items():
                for version in versions:
                    if version.version > int(seen.get(plan_id, 0)):
                        dirty |= set(months_between(month_of(version.effective_from), today))
        if found.history is not None:
            rows = timeline_rows(partner_states(found.history, found.current), found.plans)
            stored = self._stored_timeline()
            if rows != stored:
                inputs.write_timeline(client, rows)
                moment = _first_change(stored, rows)
                if moment is not None:
                    dirty |= set(months_between(month_of(moment), today))
        since = max(int(state.get("credited", 0)) - OVERLAP_MS, 0)
        first_pass = "credited" not in state
        changed, touched, mark = self._changed_since(since, first_pass)
        if first_pass:
            changed, touched = {}, set()
        elif changed is None:
            # So many events changed (crediting done again for most users) that computing the
            # open months again whole is the shorter way; closed months are adjusted event by
            # event all the same.
            dirty |= self._months_with_events() - found.closed
            changed = self._changed_since(since, False, closed=found.closed)[0] or {}
        for month in sorted(touched):
            following = next_month(month)
            if following <= today and following not in found.closed and following not in dirty:
                before = inputs.stored_tiers(client, following)
                if inputs.write_tiers(client, following, found.plans) != before:
                    dirty.add(following)
        if first_pass or dirty:
            with_events = self._months_with_events()
            # Only months with events can have lines; the first pass computes all of them.
            dirty = with_events if first_pass else dirty & with_events
        for month in sorted(dirty - found.closed):
            if month > today:
                continue
            inputs.write_tiers(client, month, found.plans)
            log.info("computing the commissions of %s again", month)
            self._ledger.recompute_period(month, progress)
            report.months.append(month)
        if changed:
            report.users = len(changed)
            report.rows = self._ledger.apply_changes(changed, found.closed)
        marks: dict[str, Any] = {"symbols": ",".join(symbols)}
        if mark or first_pass:
            marks["credited"] = max(mark, int(state.get("credited", 0)))
        return report, marks

    def _stored_timeline(self) -> list[TimelineRow]:
        rows = self._clickhouse.query(
            "SELECT partner_id, toUnixTimestamp64Milli(valid_from), chain, chain_status, "
            f"chain_ctid, plan_id, plan_version FROM {DATABASE}.commission_timeline "
            "ORDER BY partner_id, valid_from").result_rows
        return [TimelineRow(str(r[0]), int(r[1]), tuple(r[2]), tuple(r[3]), tuple(r[4]),
                            str(r[5]), int(r[6])) for r in rows]

    def _changed_since(self, since_ms: int, first_pass: bool,
                       closed: Collection[str] | None = None,
                       ) -> tuple[dict[str, set[str]] | None, set[str], int]:
        """The events whose credited rows changed since then, by user (None when there are
        more than MANY_CHANGES of them; with `closed`, only those of these months), the months
        of those events, and the latest `inserted_at` seen."""
        where = ("inserted_at > fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
                 "AND user_id != ''")
        parameters: dict[str, Any] = {"since": since_ms, "closed": sorted(closed or ())}
        if closed is not None:
            where += " AND formatDateTime(ts, '%Y-%m', 'UTC') IN {closed:Array(String)}"
        counted = self._clickhouse.query(
            "SELECT count(), groupUniqArray(formatDateTime(ts, '%Y-%m', 'UTC')), "
            f"max(toUnixTimestamp64Milli(inserted_at)) FROM {DATABASE}.events_credited "
            f"WHERE {where}", parameters=parameters).result_rows[0]
        months, mark = {str(month) for month in counted[1]}, int(counted[2] or 0)
        if first_pass or int(counted[0]) == 0:
            return {}, months, mark
        if int(counted[0]) > MANY_CHANGES and closed is None:
            return None, months, mark
        rows = self._clickhouse.query(
            "SELECT user_id, groupUniqArray(event_id) "
            f"FROM {DATABASE}.events_credited WHERE {where} GROUP BY user_id",
            parameters=parameters).result_rows
        return {str(row[0]): {str(e) for e in row[1]} for row in rows}, months, mark

    def _months_with_events(self) -> set[str]:
        rows = self._clickhouse.query(
            "SELECT DISTINCT formatDateTime(ts, '%Y-%m', 'UTC') FROM "
            f"{DATABASE}.events_credited WHERE event_type IN ('trade', 'deposit') "
            f"UNION DISTINCT SELECT DISTINCT formatDateTime(ts, '%Y-%m', 'UTC') FROM "
            f"{DATABASE}.events WHERE event_type = 'reversal'").result_rows
        return {str(row[0]) for row in rows}


def _versions(plans: Mapping[str, Sequence[PlanVersion]]) -> dict[str, int]:
    return {plan_id: max((v.version for v in versions), default=0)
            for plan_id, versions in plans.items()}


def _first_change(old: Sequence[TimelineRow], new: Sequence[TimelineRow]) -> int | None:
    """The earliest moment at which the two timelines say something different (None: same)."""
    def by_partner(rows: Sequence[TimelineRow]) -> dict[str, list[TimelineRow]]:
        grouped: dict[str, list[TimelineRow]] = {}
        for row in rows:
            grouped.setdefault(row.partner_id, []).append(row)
        return grouped

    before, after = by_partner(old), by_partner(new)
    earliest: int | None = None
    for partner_id in set(before) | set(after):
        a, b = before.get(partner_id, []), after.get(partner_id, [])
        # A new partner's first row reaches back to the beginning of time, but no event can
        # have been credited to it before it existed: only its later rows matter.
        start = 1 if not a else 0
        for index in range(start, max(len(a), len(b))):
            x = a[index] if index < len(a) else None
            y = b[index] if index < len(b) else None
            if x != y:
                moments = [r.valid_from for r in (x, y) if r is not None]
                moment = min(moments)
                earliest = moment if earliest is None else min(earliest, moment)
                break
    return earliest


async def _renew(lock: Lock) -> None:
    while True:
        await asyncio.sleep(LOCK_RENEW_S)
        with contextlib.suppress(RedisError):
            await lock.reacquire()
