"""The link code of each registration's click (schema migration 13): stored by the batcher once
the registrations are written, backfilled by the migration, and a link's registrations counted
exactly whether or not the code is stored yet."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import redis

from analytics import links, registration_codes
from analytics.clickhouse import Client
from analytics.filters import ClickFilter
from analytics.schema import migrate
from edge.streams import CONVERSION_STREAM
from tests.analytics.fixtures_api import (
    DAY,
    TREE,
    click,
    hours,
    insert_clicks,
    insert_registrations,
)
from tests.analytics.test_conversions import drain_conversions, registration
from tests.conftest import RedisServer

F = ClickFilter(start=DAY, end=DAY + timedelta(days=1))


def uuid7_at(at: datetime) -> str:
    """A UUIDv7 holding `at`'s millisecond, as the edge makes them."""
    ms = int(at.timestamp() * 1000)
    rand = uuid.uuid4().int
    value = (ms << 80) | (0x7 << 76) | ((rand >> 64) & 0xFFF) << 64 | (0b10 << 62) | (
        rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def clicked(clickhouse: Client, code: str, at: datetime, *, ts_offset_ms: int = 0) -> str:
    """A person's click through link `code` of TREE.leaf; the row's time may be a little off
    the id's millisecond, as the edge's clock read just before the id was made."""
    click_id = uuid7_at(at)
    insert_clicks(clickhouse, [click(TREE.leaf, at=at + timedelta(milliseconds=ts_offset_ms),
                                     click_id=uuid.UUID(click_id), code=code)])
    return click_id


def stored(clickhouse: Client) -> dict[str, str]:
    return {str(event_id): str(code) for event_id, code in clickhouse.query(
        "SELECT event_id, code FROM invite.registration_codes FINAL").result_rows}


def registered(clickhouse: Client, user: str, click_id: str) -> None:
    insert_registrations(clickhouse, TREE.leaf, 1, at=DAY + hours(5), user_id=user,
                         click_id=click_id, event_id=f"registration:{user}")


def test_the_migration_stores_the_codes_of_the_registrations_before_it(
    clickhouse: Client,
) -> None:
    first = clicked(clickhouse, "L1", DAY + hours(1))
    # The row's time a millisecond before its id's: still found.
    second = clicked(clickhouse, "L2", DAY + hours(2), ts_offset_ms=-1)
    registered(clickhouse, "1", first)
    registered(clickhouse, "2", second)
    registered(clickhouse, "3", str(uuid.uuid4()))  # a click no longer (or never) in `clicks`
    registered(clickhouse, "4", "not-a-click-id")
    clickhouse.command("DROP TABLE invite.registration_codes")
    clickhouse.command("DELETE FROM invite.schema_migrations WHERE version = 13")

    assert migrate(clickhouse) == [13]
    assert stored(clickhouse) == {"registration:1": "L1", "registration:2": "L2"}
    clickhouse.command("DELETE FROM invite.schema_migrations WHERE version = 13")
    assert migrate(clickhouse) == [13]  # again: nothing twice
    assert clickhouse.command("SELECT count() FROM invite.registration_codes FINAL") == 2


def test_a_links_registrations_come_from_the_stored_codes(clickhouse: Client) -> None:
    first = clicked(clickhouse, "L1", DAY + hours(1))
    registered(clickhouse, "1", first)
    registered(clickhouse, "2", clicked(clickhouse, "L1", DAY + hours(2)))
    registered(clickhouse, "3", clicked(clickhouse, "L2", DAY + hours(3)))
    registration_codes.fill_batch(
        clickhouse, ["registration:1", "registration:2", "registration:3"])
    assert len(stored(clickhouse)) == 3
    # Without the clicks, only the stored codes can tell.
    clickhouse.command("TRUNCATE TABLE invite.clicks")

    assert links.registrations(clickhouse, F, [TREE.leaf], ["L1", "L2", "L3"]) == {
        "L1": 2, "L2": 1}
    assert links.registrations(clickhouse, F, [TREE.leaf], ["L2"]) == {"L2": 1}
    assert links.registrations(clickhouse, F, [TREE.other], ["L1"]) == {}


def test_a_registration_before_its_click_reached_clickhouse_is_counted_all_the_same(
    clickhouse: Client,
) -> None:
    registered(clickhouse, "1", clicked(clickhouse, "L1", DAY + hours(1)))
    late = uuid7_at(DAY + hours(2))
    registered(clickhouse, "2", late)
    registration_codes.fill_batch(clickhouse, ["registration:1", "registration:2"])
    assert stored(clickhouse) == {"registration:1": "L1"}  # the click of 2 is not there yet
    insert_clicks(clickhouse, [click(TREE.leaf, at=DAY + hours(2), click_id=uuid.UUID(late),
                                     code="L1")])

    # Stored for one, looked up for the other: each once.
    assert links.registrations(clickhouse, F, [TREE.leaf], ["L1"]) == {"L1": 2}
    registration_codes.fill_batch(clickhouse, ["registration:2"])
    assert links.registrations(clickhouse, F, [TREE.leaf], ["L1"]) == {"L1": 2}


def test_the_batcher_stores_the_code_of_each_registration_it_writes(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    click_id = uuid7_at(now - timedelta(minutes=3))
    insert_clicks(clickhouse, [click("sub-ib", at=now - timedelta(minutes=3),
                                     click_id=uuid.UUID(click_id), code="spring")])
    for event in (registration(41, click_id=click_id), registration(42)):  # 42: no click
        redis_client.xadd(CONVERSION_STREAM, {"e": orjson.dumps(event)})

    drain_conversions(redis_server.url, clickhouse)

    assert stored(clickhouse) == {"registration:41": "spring"}
    window = ClickFilter(start=now - timedelta(hours=1), end=now + timedelta(hours=1))
    assert links.registrations(clickhouse, window, ["sub-ib"], ["spring"]) == {"spring": 1}


def test_a_failed_lookup_leaves_the_batch_written(clickhouse: Client) -> None:
    clickhouse.command("RENAME TABLE invite.registration_codes TO invite.registration_codes_away")
    try:
        registered(clickhouse, "1", clicked(clickhouse, "L1", DAY + hours(1)))
        registration_codes.fill_batch(clickhouse, ["registration:1"])  # logged, not raised
    finally:
        clickhouse.command(
            "RENAME TABLE invite.registration_codes_away TO invite.registration_codes")

    assert links.registrations(clickhouse, F, [TREE.leaf], ["L1"]) == {"L1": 1}


def test_a_registration_recorded_again_with_another_click_counts_for_that_click_alone(
    clickhouse: Client,
) -> None:
    registered(clickhouse, "1", clicked(clickhouse, "L1", DAY + hours(1)))
    registration_codes.fill_batch(clickhouse, ["registration:1"])
    later = uuid7_at(DAY + hours(2))
    registered(clickhouse, "1", later)  # the same registration again: its latest row wins
    registration_codes.fill_batch(clickhouse, ["registration:1"])  # the new click is not in yet
    insert_clicks(clickhouse, [click(TREE.leaf, at=DAY + hours(2), click_id=uuid.UUID(later),
                                     code="L2")])

    assert links.registrations(clickhouse, F, [TREE.leaf], ["L1", "L2"]) == {"L2": 1}
    registration_codes.fill_batch(clickhouse, ["registration:1"])
    assert links.registrations(clickhouse, F, [TREE.leaf], ["L1", "L2"]) == {"L2": 1}
