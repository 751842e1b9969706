"""The clicks of a question's ended days kept in `closed_clicks` (analytics/closed_clicks.py): a
summary or breakdown asked again reads them, and answers as one asked from scratch whatever came
in between: late clicks, erased visitors, rows a TTL removed, a second computation."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics import closed_clicks, queries
from analytics.clickhouse import Client, embedded
from analytics.filters import ClickFilter
from analytics.schema import clear_stores
from tests.analytics.fixtures_api import BOT, DAY, TREE, click, hours, insert_clicks

WEEK = ClickFilter(start=DAY, end=DAY + timedelta(days=7))
SCOPES = {
    "everyone": {},
    "subtree": {"partner_id": TREE.master, "include_downline": True},
    "one partner": {"partner_id": TREE.sub},
    "campaign": {"campaign": "launch"},
}


def entries(clickhouse: Client) -> int:
    return int(clickhouse.query(
        "SELECT count() FROM invite.closed_clicks_entries").result_rows[0][0])


def answers(clickhouse: Client, f: ClickFilter) -> tuple[Any, ...]:
    return (queries.summary(clickhouse, f), queries.breakdown(clickhouse, f, "country", 20),
            queries.breakdown(clickhouse, f, "link", 20),
            queries.breakdown(clickhouse, f, "partner", 20))


def from_scratch(clickhouse: Client, f: ClickFilter) -> tuple[Any, ...]:
    """The answers with nothing stored; what was stored is put back after."""
    tables = ("closed_clicks", "closed_clicks_entries")
    for table in tables:
        clickhouse.command(f"CREATE TABLE IF NOT EXISTS invite.{table}_kept AS invite.{table}")
        clickhouse.command(f"TRUNCATE TABLE invite.{table}_kept")
        clickhouse.command(f"INSERT INTO invite.{table}_kept SELECT * FROM invite.{table}")  # noqa: S608
    clear_stores(clickhouse)
    found = answers(clickhouse, f)
    clear_stores(clickhouse)
    for table in tables:
        clickhouse.command(f"INSERT INTO invite.{table} SELECT * FROM invite.{table}_kept")  # noqa: S608
    return found


def a_week_of_clicks(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [
        click(at=DAY + hours(n), country=country, code=code)
        for n, country, code in ((1, "DE", "a1"), (30, "FR", "a1"), (50, "DE", "b2"))])
    insert_clicks(clickhouse, [click(partner_id=TREE.master, at=DAY + hours(75), country="CY"),
                               click(partner_id=TREE.leaf, at=DAY + hours(100), **BOT)])


@pytest.mark.parametrize("scope", SCOPES.values(), ids=SCOPES.keys())
def test_answers_asked_again_read_the_stored_days_and_stay_the_same(
    clickhouse: Client, scope: dict[str, Any],
) -> None:
    a_week_of_clicks(clickhouse)
    f = ClickFilter(start=WEEK.start, end=WEEK.end, **scope)

    first = answers(clickhouse, f)

    assert entries(clickhouse) > 0
    assert answers(clickhouse, f) == first == from_scratch(clickhouse, f)


def test_a_summary_asked_again_reads_the_store(clickhouse: Client) -> None:
    a_week_of_clicks(clickhouse)
    assert queries.summary(clickhouse, WEEK).clicks == 5

    clickhouse.command("ALTER TABLE invite.closed_clicks UPDATE n_clicks = n_clicks + 100 "
                       "WHERE 1", settings={"mutations_sync": 2})

    assert queries.summary(clickhouse, WEEK).clicks == 105


@pytest.mark.parametrize("scope", SCOPES.values(), ids=SCOPES.keys())
def test_a_late_click_in_an_ended_day_is_counted(
    clickhouse: Client, scope: dict[str, Any],
) -> None:
    a_week_of_clicks(clickhouse)
    f = ClickFilter(start=WEEK.start, end=WEEK.end, **scope)
    before = queries.summary(clickhouse, f)

    insert_clicks(clickhouse, [click(partner_id=TREE.sub, at=DAY + hours(5), country="DE")])

    assert queries.summary(clickhouse, f).clicks == before.clicks + 1
    assert answers(clickhouse, f) == from_scratch(clickhouse, f)


def test_an_erased_visitors_raw_clicks_leave_the_answers(clickhouse: Client) -> None:
    a_week_of_clicks(clickhouse)
    gone = click(partner_id=TREE.sub, at=DAY + hours(20), visitor_id="visitor-to-erase")
    insert_clicks(clickhouse, [gone])
    f = ClickFilter(start=WEEK.start, end=WEEK.end, partner_id=TREE.sub)
    assert queries.summary(clickhouse, f).clicks == 4

    clickhouse.command("DELETE FROM invite.clicks WHERE visitor_id = 'visitor-to-erase'",
                       settings={"lightweight_deletes_sync": 2})

    assert queries.summary(clickhouse, f).clicks == 3


def test_rows_a_ttl_removed_leave_the_answers(clickhouse: Client) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    insert_clicks(clickhouse, [click(at=today - timedelta(days=60))])
    insert_clicks(clickhouse, [click(at=today - timedelta(days=3))])
    f = ClickFilter(start=today - timedelta(days=90), end=today, partner_id=TREE.sub)
    assert queries.summary(clickhouse, f).clicks == 2
    try:
        clickhouse.command("ALTER TABLE invite.clicks MODIFY TTL toDateTime(ts) + "
                           "toIntervalDay(30)", settings={"materialize_ttl_after_modify": 0})
        clickhouse.command("OPTIMIZE TABLE invite.clicks FINAL")
        assert clickhouse.query("SELECT count() FROM invite.clicks").result_rows[0][0] == 1

        assert queries.summary(clickhouse, f).clicks == 1
    finally:
        clickhouse.command("ALTER TABLE invite.clicks REMOVE TTL")


def test_a_second_computation_replaces_the_first_without_counting_twice(
    clickhouse: Client,
) -> None:
    a_week_of_clicks(clickhouse)
    first = answers(clickhouse, WEEK)
    clickhouse.command("TRUNCATE TABLE invite.closed_clicks_entries")  # rows of attempt 1 stay

    assert answers(clickhouse, WEEK) == first
    assert answers(clickhouse, WEEK) == first


@pytest.mark.parametrize("f", [
    ClickFilter(start=DAY + timedelta(minutes=7), end=DAY + timedelta(days=7)),  # moving start
    ClickFilter(start=DAY, end=DAY + hours(20)),  # no whole day ended
    ClickFilter.last(datetime.now(UTC)),  # the API's default
], ids=["moving-start", "under-a-day", "api-default"])
def test_ranges_without_a_lasting_closed_part_are_asked_in_full(
    clickhouse: Client, f: ClickFilter,
) -> None:
    a_week_of_clicks(clickhouse)

    answers(clickhouse, f)

    assert entries(clickhouse) == 0


def test_today_is_asked_every_time(clickhouse: Client) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    f = ClickFilter(start=today - timedelta(days=2), end=today + timedelta(days=1))
    insert_clicks(clickhouse, [click(at=today - timedelta(hours=30))])
    assert queries.summary(clickhouse, f).clicks == 1

    insert_clicks(clickhouse, [click(at=datetime.now(UTC))])

    assert queries.summary(clickhouse, f).clicks == 2
    assert entries(clickhouse) == 1


def test_random_late_clicks_between_questions_never_show_a_stale_answer(
    clickhouse: Client,
) -> None:
    rng = random.Random(8)
    a_week_of_clicks(clickhouse)
    for _ in range(10):
        insert_clicks(clickhouse, [
            click(partner_id=rng.choice([TREE.sub, TREE.leaf, TREE.master, TREE.other]),
                  at=DAY + timedelta(minutes=rng.randrange(7 * 24 * 60)),
                  country=rng.choice(["DE", "FR"]), code=rng.choice(["a1", "b2", "c3"]),
                  campaign=rng.choice(["launch", "summer"]))
            for _ in range(rng.randrange(1, 4))])
        if rng.random() < 0.3:
            clickhouse.command("OPTIMIZE TABLE invite.clicks_breakdown_daily FINAL")
        f = ClickFilter(start=WEEK.start, end=WEEK.end, **rng.choice(list(SCOPES.values())))
        assert answers(clickhouse, f) == from_scratch(clickhouse, f)


def test_a_breakdowns_top_keys_and_their_rows_read_one_kept_entry(clickhouse: Client) -> None:
    """The rows of the top keys come from the days kept for every key (those the top keys were
    found in): looked up once per answer, and right whichever keys are on top."""
    a_week_of_clicks(clickhouse)
    closer = closed_clicks.closer(clickhouse)
    top = queries.breakdown_keys(clickhouse, WEEK, "link", 1, closer)
    assert top == ["a1"]
    rows = queries.breakdown(clickhouse, WEEK, "link", 1, top, closer)
    assert [(row.key, row.clicks, row.unique_visitors) for row in rows] == [("a1", 2, 2)]
    assert entries(clickhouse) == 1

    both = queries.breakdown(clickhouse, WEEK, "link", 2)  # other keys on top: the same entry
    assert [row.key for row in both] == ["a1", "dadMUv6"]  # the fixture's default code
    assert entries(clickhouse) == 1
    assert both == from_scratch(clickhouse, WEEK)[2][:2]


def test_an_entry_seen_is_taken_again_until_the_store_is_emptied(clickhouse: Client) -> None:
    """The embedded engine's entries seen are taken again without reading their row (their
    part still there), and forgotten when the store is emptied."""
    a_week_of_clicks(clickhouse)
    assert embedded(clickhouse)
    first = answers(clickhouse, WEEK)
    # Entry rows read again would be found wrong now (no marks): the ones seen are taken.
    clickhouse.command("ALTER TABLE invite.closed_clicks_entries UPDATE high_water = '{}' "
                       "WHERE 1", settings={"mutations_sync": 2})
    stored = entries(clickhouse)
    assert answers(clickhouse, WEEK) == first
    assert entries(clickhouse) == stored  # nothing computed again

    clear_stores(clickhouse)  # its parts go: what was seen is not taken again
    insert_clicks(clickhouse, [click(at=DAY + hours(2), country="IT", code="a1")])
    again = answers(clickhouse, WEEK)
    assert again != first
    assert again == from_scratch(clickhouse, WEEK)
