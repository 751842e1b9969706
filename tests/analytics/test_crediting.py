"""Funnel events credited to partners: at the event's time, before and after the registration,
through accounts, with reversals and the first-time deposit, once however often it runs."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
import redis
from redis.asyncio import Redis

from analytics.batcher import Batcher
from analytics.clickhouse import Client
from analytics.events.crediting import Crediting
from analytics.sinks import EVENTS
from edge.config import BatcherSettings
from edge.events.intake import EventIntake
from edge.events.model import check_events
from edge.streams import EVENT_STREAM, NOTIFICATION_STREAM
from tests.analytics.fixtures_api import insert_registrations
from tests.analytics.test_batcher import run_until
from tests.conftest import RedisServer

pytestmark = pytest.mark.servers

HOUR = 3_600_000
T0 = (int(time.time() * 1000) // HOUR - 48) * HOUR  # two days ago, on the hour


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def deposit(event_id: str, ts: int, amount: str, user: int = 7, **more: Any) -> dict[str, Any]:
    return {"eventId": event_id, "type": "deposit", "ts": ts, "userId": user, "amount": amount,
            **more}


def trade(event_id: str, ts: int, lots: str, **more: Any) -> dict[str, Any]:
    return {"eventId": event_id, "type": "trade", "ts": ts, "symbol": "EURUSD", "lots": lots,
            "commission": "3.5", "markup": "1.25", **({"userId": 7} | more)}


class Funnel:
    """The intake, the events batcher and one crediting pass, against real Redis and chDB."""

    def __init__(self, redis_url: str, clickhouse: Client) -> None:
        self.redis_url = redis_url
        self.clickhouse = clickhouse

    def post(self, *events: dict[str, Any]) -> None:
        async def go() -> None:
            client = Redis.from_url(self.redis_url)
            try:
                await EventIntake(client).submit(check_events(events, "api"))
            finally:
                await client.aclose()
        asyncio.run(go())

    def credit(self) -> int:
        async def go() -> int:
            client = Redis.from_url(self.redis_url)
            batcher = Batcher(Redis.from_url(self.redis_url), self.clickhouse, BatcherSettings(
                consumer="test", flush_ms=50, claim_idle_ms=300), EVENTS)

            async def drained() -> bool:
                groups = await batcher._redis.xinfo_groups(EVENT_STREAM)
                return bool(groups) and groups[0]["pending"] == 0 and groups[0]["lag"] == 0

            try:
                await run_until(batcher, drained)
                return await Crediting(client, self.clickhouse).pass_once()
            finally:
                await client.aclose()
        return asyncio.run(go())

    def reversed_events(self) -> dict[str, str]:
        """event id → partner of the reversed events (they keep their credit, marked)."""
        rows = self.clickhouse.query(
            "SELECT event_id, partner_id, sum(sign) AS live FROM invite.events_credited "
            "WHERE reversed = 1 GROUP BY event_id, partner_id HAVING live > 0"
        ).result_rows
        return {str(r[0]): str(r[1]) for r in rows}

    def credited(self) -> dict[str, tuple[Any, ...]]:
        """The credited events that count in the figures (not reversed)."""
        rows = self.clickhouse.query(
            "SELECT event_id, partner_id, user_id, is_first_deposit, amount, ancestors, "
            "sum(sign) AS live FROM invite.events_credited WHERE reversed = 0 "
            "GROUP BY event_id, partner_id, "
            "user_id, is_first_deposit, amount, ancestors HAVING live > 0"
        ).result_rows
        return {str(r[0]): (str(r[1]), str(r[2]), int(r[3]), Decimal(r[4]), tuple(r[5]))
                for r in rows}


@pytest.fixture
def funnel(redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client) -> Funnel:
    return Funnel(redis_server.url, clickhouse)


def test_a_registered_users_events_go_to_its_partner_with_the_ancestors(funnel: Funnel) -> None:
    insert_registrations(funnel.clickhouse, "sub-1", 1, at=at(T0), user_id="7",
                         ancestors=["master", "ib-1"])
    funnel.post(deposit("d1", T0 + HOUR, "250.50"), trade("t1", T0 + 2 * HOUR, "1.5"),
                deposit("d2", T0 + 3 * HOUR, "100"))
    assert funnel.credit() == 3
    credited = funnel.credited()
    assert credited["d1"] == ("sub-1", "7", 1, Decimal("250.5"), ("master", "ib-1"))
    assert credited["d2"][2] == 0  # not the first deposit
    assert credited["t1"][0] == "sub-1"
    assert funnel.credit() == 0  # nothing new: nothing written


def test_events_before_the_registration_are_credited_once_it_arrives(funnel: Funnel) -> None:
    funnel.post(deposit("d1", T0, "50"), trade("t1", T0 + 1, "0.1"))
    funnel.credit()
    assert {k: v[0] for k, v in funnel.credited().items()} == {"d1": "", "t1": ""}
    insert_registrations(funnel.clickhouse, "ib-9", 1, at=at(T0 + HOUR), user_id="7")
    assert funnel.credit() == 4  # two cancelled, two credited
    assert {k: v[0] for k, v in funnel.credited().items()} == {"d1": "ib-9", "t1": "ib-9"}


def test_a_reattribution_moves_only_the_later_events(funnel: Funnel) -> None:
    insert_registrations(funnel.clickhouse, "ib-a", 1, at=at(T0), user_id="7")
    insert_registrations(funnel.clickhouse, "ib-b", 1, at=at(T0 + 10 * HOUR), user_id="7",
                         event_type="reattribution")
    funnel.post(trade("t-before", T0 + HOUR, "1"), trade("t-after", T0 + 11 * HOUR, "1"))
    funnel.credit()
    credited = funnel.credited()
    assert (credited["t-before"][0], credited["t-after"][0]) == ("ib-a", "ib-b")


def test_a_reversed_first_deposit_makes_the_next_deposit_the_first(funnel: Funnel) -> None:
    insert_registrations(funnel.clickhouse, "ib-1", 1, at=at(T0), user_id="7")
    funnel.post(deposit("d1", T0 + HOUR, "500"), deposit("d2", T0 + 2 * HOUR, "300"))
    funnel.credit()
    assert funnel.credited()["d1"][2] == 1
    funnel.post({"eventId": "r1", "type": "reversal", "ts": T0 + 3 * HOUR, "userId": 7,
                 "reverses": "d1"})
    funnel.credit()
    credited = funnel.credited()
    assert "d1" not in credited and "r1" not in credited
    assert credited["d2"][2] == 1
    assert funnel.reversed_events() == {"d1": "ib-1"}  # its partner kept for the ledger


def test_a_reversed_trade_keeps_its_partner_and_counts_in_no_figure(funnel: Funnel) -> None:
    insert_registrations(funnel.clickhouse, "ib-1", 1, at=at(T0), user_id="7")
    funnel.post(trade("t1", T0 + HOUR, "2"), trade("t2", T0 + 2 * HOUR, "1"))
    funnel.credit()
    funnel.post({"eventId": "r1", "type": "reversal", "ts": T0 + 3 * HOUR, "userId": 7,
                 "reverses": "t1"})
    funnel.credit()
    assert set(funnel.credited()) == {"t2"}
    assert funnel.reversed_events() == {"t1": "ib-1"}
    lots = funnel.clickhouse.query(
        "SELECT sum(sign * lots) FROM invite.events_credited WHERE reversed = 0"
    ).result_rows[0][0]
    assert Decimal(lots) == Decimal(1)


def test_account_events_reach_the_user_through_account_opened(funnel: Funnel) -> None:
    insert_registrations(funnel.clickhouse, "ib-1", 1, at=at(T0), user_id="7")
    by_account = trade("t1", T0 + HOUR, "2", ctidTraderAccountId=9001)
    del by_account["userId"]
    funnel.post(by_account)
    funnel.credit()
    assert funnel.credited()["t1"][:2] == ("", "")
    funnel.post({"eventId": "acc", "type": "account_opened", "ts": T0, "userId": 7,
                 "ctidTraderAccountId": 9001})
    funnel.credit()
    credited = funnel.credited()
    assert credited["t1"][:2] == ("ib-1", "7")
    assert credited["acc"][0] == "ib-1"


def test_a_first_deposit_is_announced_once(funnel: Funnel, redis_client: redis.Redis) -> None:
    insert_registrations(funnel.clickhouse, "ib-1", 1, at=at(T0), user_id="7")
    funnel.post(deposit("d1", T0 + HOUR, "250"))
    funnel.credit()
    funnel.post(deposit("d2", T0 + 2 * HOUR, "10"))
    funnel.credit()
    notices = [orjson.loads(fields[b"e"]) for _, fields in redis_client.xrange(NOTIFICATION_STREAM)]
    assert [(n["type"], n["userId"], n["partnerId"], n["amount"]) for n in notices] == [
        ("referral.ftd", "7", "ib-1", "250")
    ]
