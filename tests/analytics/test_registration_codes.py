"""Every registration with the link code of its click (schema migrations 13 and 18): written by
a view on `conversions`, its code stored by the batcher once the registrations are written,
backfilled by the migration, and a link's registrations counted exactly whether or not the code
is stored yet."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import redis

from analytics import links, registration_codes
from analytics.clickhouse import Client
from analytics.filters import ClickFilter
from analytics.registration_codes import MIGRATION_13
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
    """Migration 18 from a database with migration 13's table: every registration, with the
    codes already stored (kept after their clicks went) or looked up."""
    clickhouse.command("DROP VIEW invite.registration_codes_mv")
    clickhouse.command("DROP TABLE invite.registration_codes")
    first = clicked(clickhouse, "L1", DAY + hours(1))
    # The row's time a millisecond before its id's: still found.
    second = clicked(clickhouse, "L2", DAY + hours(2), ts_offset_ms=-1)
    registered(clickhouse, "1", first)
    registered(clickhouse, "2", second)
    registered(clickhouse, "3", str(uuid.uuid4()))  # a click no longer (or never) in `clicks`
    registered(clickhouse, "4", "not-a-click-id")
    for statement in MIGRATION_13:  # the table as migration 13 made and filled it
        clickhouse.command(statement)
    assert clickhouse.command("SELECT count() FROM invite.registration_codes") == 2
    clickhouse.command("ALTER TABLE invite.clicks DELETE WHERE code = 'L1'",
                       settings={"mutations_sync": 2})  # retention: L1 stays stored
    late = uuid7_at(DAY + hours(3))
    registered(clickhouse, "5", late)
    insert_clicks(clickhouse, [click(TREE.leaf, at=DAY + hours(3), click_id=uuid.UUID(late),
                                     code="L3")])  # its click after migration 13
    clickhouse.command("DELETE FROM invite.schema_migrations WHERE version = 18")

    assert migrate(clickhouse) == [18]
    codes = {"registration:1": "L1", "registration:2": "L2", "registration:3": "",
             "registration:4": "", "registration:5": "L3"}
    assert stored(clickhouse) == codes
    clickhouse.command("DELETE FROM invite.schema_migrations WHERE version = 18")
    assert migrate(clickhouse) == [18]  # again: the same
    assert stored(clickhouse) == codes
    assert links.registrations(clickhouse, F, [TREE.leaf], ["L1", "L2", "L3"]) == {
        "L1": 1, "L2": 1, "L3": 1}
    registered(clickhouse, "6", first)  # the view writes the registrations from now on
    assert stored(clickhouse)["registration:6"] == ""


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
    # The click of 2 is not there yet.
    assert stored(clickhouse) == {"registration:1": "L1", "registration:2": ""}
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

    assert stored(clickhouse) == {"registration:41": "spring", "registration:42": ""}
    window = ClickFilter(start=now - timedelta(hours=1), end=now + timedelta(hours=1))
    assert links.registrations(clickhouse, window, ["sub-ib"], ["spring"]) == {"spring": 1}


def test_a_failed_lookup_leaves_the_batch_written(clickhouse: Client) -> None:
    click_id = clicked(clickhouse, "L1", DAY + hours(1))
    clickhouse.command("RENAME TABLE invite.clicks TO invite.clicks_away")
    try:
        registered(clickhouse, "1", click_id)
        registration_codes.fill_batch(clickhouse, ["registration:1"])  # logged, not raised
    finally:
        clickhouse.command("RENAME TABLE invite.clicks_away TO invite.clicks")

    assert stored(clickhouse) == {"registration:1": ""}  # written by the view, without its code
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


def test_a_links_partner_campaign_and_sub_id_are_found_once_and_kept(
    clickhouse: Client,
) -> None:
    registered(clickhouse, "1", clicked(clickhouse, "L1", DAY + hours(1)))
    registration_codes.fill_batch(clickhouse, ["registration:1"])
    first = links.link_columns(clickhouse, F, ["L1", "L9"])
    assert first["L1"]["partnerId"] == TREE.leaf
    assert first["L1"]["registrations"] == 1
    assert first["L9"] == {"partnerId": None, "campaign": None, "subId": None,
                           "registrations": 0}  # no click: nothing kept
    assert clickhouse.query("SELECT code, partner_id FROM invite.link_details").result_rows == [
        ("L1", TREE.leaf)]

    clickhouse.command("TRUNCATE TABLE invite.clicks")  # a link's never change: kept
    assert links.link_columns(clickhouse, F, ["L1", "L9"]) == first
    assert clickhouse.command("SELECT count() FROM invite.link_details") == 1
