"""Conversion events (what the SSO hook records) through the batcher into `conversions`."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis
from redis.asyncio import Redis

from analytics import queries
from analytics.batcher import Batcher
from analytics.clickhouse import Client
from analytics.conversions import conversion_row
from analytics.filters import ClickFilter
from analytics.sinks import CONVERSIONS
from edge.config import BatcherSettings
from edge.errors import BadEvent
from edge.sso.conversions import ConversionEvent
from edge.streams import CONVERSION_STREAM
from tests.analytics.test_batcher import run_until
from tests.conftest import RedisServer

pytestmark = pytest.mark.servers

NOW_MS = int(time.time() * 1000)


def registration(user_id: int, partner_id: str = "sub-ib", **overrides: Any) -> dict[str, Any]:
    """A conversion event as edge/conversions.py writes it."""
    event = ConversionEvent(
        event_id=f"registration:{user_id}", event_type="registration", ts=NOW_MS,
        user_id=str(user_id), ctid_trader_account_id="", click_id="", partner_id=partner_id,
        ancestors=("master-ib",), campaign="launch", source="sso_referral",
    ).to_json()
    return {**event, **overrides}


def add(client: redis.Redis, events: list[Any]) -> None:
    for event in events:
        client.xadd(CONVERSION_STREAM, {"e": orjson.dumps(event)})


def drain_conversions(redis_url: str, clickhouse: Client, **options: Any) -> Batcher:
    settings = BatcherSettings(**{"consumer": "test", "flush_ms": 50, "claim_idle_ms": 300,
                                  **options})
    batcher = Batcher(Redis.from_url(redis_url), clickhouse, settings, CONVERSIONS)

    async def done() -> bool:
        groups = await batcher._redis.xinfo_groups(CONVERSION_STREAM)
        return bool(groups) and groups[0]["pending"] == 0 and groups[0]["lag"] == 0

    asyncio.run(run_until(batcher, done))
    return batcher


def stored(clickhouse: Client) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in clickhouse.query(
        "SELECT event_id, user_id, partner_id, ancestors, source FROM invite.conversions FINAL "
        "ORDER BY event_id"
    ).result_rows]


def test_a_recorded_registration_becomes_a_conversions_row(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    add(redis_client, [registration(41), registration(42, partner_id="ib-1")])

    drain_conversions(redis_server.url, clickhouse)

    assert stored(clickhouse) == [
        ("registration:41", "41", "sub-ib", ["master-ib"], "sso_referral"),
        ("registration:42", "42", "ib-1", ["master-ib"], "sso_referral"),
    ]


def test_registrations_show_in_the_partners_summary(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    add(redis_client, [registration(i) for i in range(3)])
    drain_conversions(redis_server.url, clickhouse)
    now = datetime.now(UTC)
    window = ClickFilter(start=now - timedelta(hours=1), end=now + timedelta(minutes=1))

    assert queries.summary(clickhouse, window).registrations == 3
    master = ClickFilter(start=window.start, end=window.end, partner_id="master-ib",
                         include_downline=True)
    assert queries.summary(clickhouse, master).registrations == 3


def test_a_registration_recorded_twice_counts_once_with_its_latest_partner(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    add(redis_client, [registration(7), registration(7)])
    drain_conversions(redis_server.url, clickhouse)
    add(redis_client, [registration(7, partner_id="ib-2", ts=NOW_MS + 1000)])
    drain_conversions(redis_server.url, clickhouse)

    assert [(row[0], row[2]) for row in stored(clickhouse)] == [("registration:7", "ib-2")]


def test_a_bad_conversion_event_goes_to_the_dead_letters_and_the_rest_is_stored(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    add(redis_client, [registration(1), registration(2, partner_id=""), "not an object"])

    drain_conversions(redis_server.url, clickhouse, max_deliveries=1)

    assert [row[0] for row in stored(clickhouse)] == ["registration:1"]
    dead = redis_client.xrange("invite:conversions:dead")
    assert len(dead) == 2
    reasons = sorted(entry[1][b"reason"].decode() for entry in dead)
    assert "partner_id is empty" in reasons[1] or "partner_id is empty" in reasons[0]


@pytest.mark.parametrize(("change", "reason"), [
    ({"event_id": ""}, "event_id is missing"),
    ({"event_type": "signup"}, "event_type 'signup' is not one of"),
    ({"ts": "yesterday"}, "ts 'yesterday' is not a time"),
    ({"ts": True}, "ts 'True' is not a time"),
    ({"user_id": 41}, "user_id is not a string"),
    ({"partner_id": ""}, "partner_id is empty"),
    ({"ancestors": "master-ib"}, "ancestors is not a list"),
    ({"ancestors": [""]}, "ancestors is not a list"),
])
def test_conversion_rows_refuse_what_the_hook_never_writes(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(BadEvent, match=reason):
        conversion_row({**registration(1), **change})
