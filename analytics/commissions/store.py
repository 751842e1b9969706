"""Plans and periods in Redis (beside the registry, whose partners name plans): every plan
version ever added, and each month's state (closed, paid with its reference)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from redis.asyncio import Redis
from redis.asyncio.lock import Lock

from analytics.commissions.months import month_of, months_between
from analytics.commissions.plans import PlanInvalid, Terms, parse_terms
from edge.clock import iso_utc, now_ms
from edge.redis_client import as_text
from edge.registry.keys import PLANS_PREFIX, plan_key

PLAN_IDS: Final = PLANS_PREFIX + "plans"  # sorted set of plan ids
PERIODS: Final = PLANS_PREFIX + "periods"  # hash: YYYY-MM -> its state (closed or paid)
REVISION: Final = PLANS_PREFIX + "revision"  # bumped by every plan or period change
# The ledger's writer holds LEDGER_LOCK; a plan change and a close hold PERIODS_LOCK while they
# read and change the periods (a close takes the ledger's lock first, never the other way).
LEDGER_LOCK: Final = PLANS_PREFIX + "ledger-lock"
PERIODS_LOCK: Final = PLANS_PREFIX + "periods-lock"
LEDGER_LOCK_TTL_S: Final = 600.0
PERIODS_LOCK_TTL_S: Final = 30.0


@dataclass(frozen=True)
class PlanVersion:
    plan_id: str
    version: int
    effective_from: int  # ms
    created_at: int  # ms
    terms: Terms

    def to_json(self) -> dict[str, Any]:
        return {
            "planId": self.plan_id, "version": self.version,
            "effectiveFrom": iso_utc(self.effective_from),
            "createdAt": iso_utc(self.created_at), **self.terms.to_json(),
        }

    def stored(self) -> bytes:
        return orjson.dumps({"v": self.version, "from": self.effective_from,
                             "at": self.created_at, "terms": self.terms.to_json()})

    @classmethod
    def load(cls, plan_id: str, raw: bytes | str) -> PlanVersion:
        stored = orjson.loads(raw)
        return cls(plan_id, int(stored["v"]), int(stored["from"]), int(stored["at"]),
                   parse_terms(stored["terms"], plan_id))


def in_force(versions: Iterable[PlanVersion], at_ms: int) -> PlanVersion | None:
    """The version in force at a moment: of those effective by then, the last added."""
    effective = [v for v in versions if v.effective_from <= at_ms]
    return max(effective, key=lambda v: v.version) if effective else None


@dataclass(frozen=True)
class PeriodState:
    period: str
    status: str  # "open", "closed", "paid"
    closed_at: int = 0
    paid_at: int = 0
    reference: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period, "status": self.status,
            "closedAt": iso_utc(self.closed_at) if self.closed_at else None,
            "paidAt": iso_utc(self.paid_at) if self.paid_at else None,
            "reference": self.reference or None,
        }


class CommissionStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def ledger_lock(self, blocking_timeout: float | None = None) -> Lock:
        return self._redis.lock(LEDGER_LOCK, timeout=LEDGER_LOCK_TTL_S,
                                blocking_timeout=blocking_timeout)

    def periods_lock(self) -> Lock:
        return self._redis.lock(PERIODS_LOCK, timeout=PERIODS_LOCK_TTL_S, blocking_timeout=10)

    async def revision(self) -> int:
        return int(await self._redis.get(REVISION) or 0)

    # Plans.

    async def plan_ids(self) -> list[str]:
        return [as_text(plan_id) for plan_id in await self._redis.zrange(PLAN_IDS, 0, -1)]

    async def versions(self, plan_id: str) -> list[PlanVersion]:
        stored: dict[Any, Any] = await self._redis.hgetall(plan_key(plan_id))
        return sorted((PlanVersion.load(plan_id, raw) for raw in stored.values()),
                      key=lambda v: v.version)

    async def all_versions(self) -> dict[str, list[PlanVersion]]:
        return {plan_id: await self.versions(plan_id) for plan_id in await self.plan_ids()}

    async def add_version(
        self, plan_id: str, terms: Terms, effective_from: int | None
    ) -> tuple[PlanVersion, bool]:
        """Add a version (from `effective_from`, default now) unless it would reach into a
        closed period; returns it and whether the plan is new. The same terms again from the
        same moment (or, without a moment, the terms in force now) add nothing."""
        async with self.periods_lock():
            now = now_ms()
            versions = await self.versions(plan_id)
            current = in_force(versions, now if effective_from is None else effective_from)
            if current is not None and current.terms == terms and (
                effective_from is None or current.effective_from == effective_from
            ):
                return current, False
            start = now if effective_from is None else effective_from
            closed = await self.closed_periods()
            touched = months_between(month_of(start), month_of(now))
            reached = sorted(set(touched) & closed)
            if reached:
                raise PlanInvalid(
                    "effectiveFrom", f"{iso_utc(start)} reaches into closed period {reached[0]}: "
                    "a closed month's lines are frozen; start the version after it")
            version = PlanVersion(plan_id, max((v.version for v in versions), default=0) + 1,
                                  start, now, terms)
            # The ledger sees the new version and computes the open months it reaches again.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(plan_key(plan_id), str(version.version), version.stored())
                pipe.zadd(PLAN_IDS, {plan_id: 0})
                pipe.incr(REVISION)
                await pipe.execute()
            return version, not versions

    # Periods.

    async def periods(self) -> dict[str, PeriodState]:
        stored: dict[Any, Any] = await self._redis.hgetall(PERIODS)
        found = {}
        for period, raw in stored.items():
            state = orjson.loads(raw)
            found[as_text(period)] = PeriodState(
                as_text(period), str(state["status"]), int(state.get("closedAt", 0)),
                int(state.get("paidAt", 0)), str(state.get("reference", "")),
            )
        return found

    async def closed_periods(self) -> set[str]:
        return set(await self.periods())

    async def set_period(self, state: PeriodState) -> None:
        body = {"status": state.status, "closedAt": state.closed_at, "paidAt": state.paid_at,
                "reference": state.reference}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(PERIODS, state.period, orjson.dumps(body))
            pipe.incr(REVISION)
            await pipe.execute()
