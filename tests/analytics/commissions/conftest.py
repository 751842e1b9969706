"""A broker's programme for the ledger's tests: partners in the registry, plans, registrations,
events through the intake, the events batcher and crediting, and the ledger's pass, all real."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from analytics.api import create_analytics_app
from analytics.clickhouse import Client
from analytics.commissions.plans import parse_terms
from analytics.commissions.store import CommissionStore, PeriodState, PlanVersion
from analytics.commissions.worker import CommissionsWorker, PassReport
from analytics.partners_sync import PartnersSync
from edge.registry.destinations import DestinationPolicy
from edge.registry.edits import PartnerEdit
from edge.registry.partners import PartnerRegistry
from tests.analytics.fixtures_api import insert_registrations
from tests.analytics.test_api import AnalyticsServer
from tests.analytics.test_crediting import Funnel
from tests.conftest import SECRET, RedisServer, make_settings

COMMISSION_TABLES = ("commissions", "commissions_staging", "commissions_scratch",
                     "commission_timeline", "commission_plans", "commission_rebates",
                     "commission_tiers", "commission_periods")
LINE_FIELDS = ("period", "kind", "event_id", "partner_id", "level", "amount", "excluded",
               "tier", "adjusts")


def ms(text: str) -> int:
    """Milliseconds of an ISO time written without zone (UTC)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@dataclass
class Programme:
    redis_url: str
    clickhouse: Client
    funnel: Funnel
    currency: str = "USD"

    def _run(self, work: Any) -> Any:
        async def go() -> Any:
            client = Redis.from_url(self.redis_url, decode_responses=True)
            try:
                return await work(client)
            finally:
                await client.aclose()
        return asyncio.run(go())

    def partner(self, partner_id: str, **fields: Any) -> None:
        async def work(client: Redis) -> None:
            registry = PartnerRegistry(client, SECRET, DestinationPolicy(("broker.test",)))
            await registry.upsert(partner_id, PartnerEdit(**fields))
        self._run(work)

    def plan(self, plan_id: str, effective_from: int | None = 0,
             **body: Any) -> PlanVersion:
        async def work(client: Redis) -> PlanVersion:
            version, _ = await CommissionStore(client).add_version(
                plan_id, parse_terms(body, plan_id), effective_from)
            return version
        result: PlanVersion = self._run(work)
        return result

    def close(self, period: str) -> None:
        async def work(client: Redis) -> None:
            await CommissionStore(client).set_period(PeriodState(period, "closed", 1))
        self._run(work)

    def register(self, user: int, partner_id: str, at: int, **more: Any) -> None:
        insert_registrations(self.clickhouse, partner_id, 1, user_id=str(user),
                             at=datetime.fromtimestamp(at / 1000, UTC), **more)

    def post(self, *events: dict[str, Any]) -> None:
        self.funnel.post(*events)

    def compute(self, months: tuple[str, ...] = ()) -> PassReport:
        """Move the events in, credit them, copy the partners, and run one pass of the
        ledger."""
        self.funnel.credit()

        async def work(client: Redis) -> PassReport:
            await PartnersSync(client, self.clickhouse).sync_once()
            worker = CommissionsWorker(client, self.clickhouse, self.currency)
            lock = CommissionStore(client).ledger_lock(blocking_timeout=10)
            assert await lock.acquire()
            try:
                return await worker.pass_locked(lock, months=months)
            finally:
                await lock.release()
        result: PassReport = self._run(work)
        return result

    def lines(self, **where: Any) -> list[dict[str, Any]]:
        rows = self.clickhouse.query(
            "SELECT period, kind, event_id, partner_id, level, amount, excluded, tier, adjusts, "
            "base, rate, multiplier, line_id, user_id, plan_version, reverses "
            "FROM invite.commissions FINAL ORDER BY ts, event_id, kind, level, adjusts"
        ).result_rows
        names = (*LINE_FIELDS, "base", "rate", "multiplier", "line_id", "user_id",
                 "plan_version", "reverses")
        found = [dict(zip(names, row, strict=True)) for row in rows]
        return [line for line in found if all(line[k] == v for k, v in where.items())]

    def amounts(self, **where: Any) -> list[tuple[str, str, int, Decimal]]:
        """(kind, partner, level, amount) of the lines, in order."""
        return [(line["kind"], line["partner_id"], line["level"], line["amount"])
                for line in self.lines(**where)]


@pytest.fixture
def programme(redis_client: redis.Redis, redis_server: RedisServer,
              clickhouse: Client) -> Iterator[Programme]:
    for table in COMMISSION_TABLES:
        clickhouse.command(f"TRUNCATE TABLE IF EXISTS invite.{table}")
    yield Programme(redis_server.url, clickhouse, Funnel(redis_server.url, clickhouse))


@pytest.fixture
def ledger_api(programme: Programme, redis_server: RedisServer, clickhouse_session: Client,
               tmp_path: Any) -> Iterator[AnalyticsServer]:
    """`invite analytics`'s app on the test's Redis and the session's chDB engine."""
    settings = make_settings(
        tmp_path / "analytics", redis_server.url,
        INVITE_CLICKHOUSE_URL=f"chdb://{clickhouse_session.path}",  # type: ignore[attr-defined]
    )
    server = AnalyticsServer(settings, create_analytics_app(settings, clickhouse_session))
    yield server
    server.stop()
