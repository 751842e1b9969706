"""The closed buckets of the time series kept in `series_cache` (analytics/series_cache.py): a
series asked again reads them, and gives the same figures as one computed from scratch whatever
came in between: late clicks and events in closed buckets, cancellations, deletes, merges."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics import queries, series_cache
from analytics.clickhouse import Client
from analytics.events import queries as funnel_events
from analytics.events.queries import Figures
from analytics.filters import ClickFilter
from analytics.schema import clear_stores, rebuild_views
from tests.analytics.fixtures_api import DAY, TREE, click, hours, insert_clicks
from tests.analytics.test_funnel_rollups import NAMES, START, generate

THREE_DAYS = ClickFilter(start=DAY, end=DAY + timedelta(days=3))
SUBTREE = ClickFilter(start=DAY, end=DAY + timedelta(days=3), partner_id=TREE.master,
                      include_downline=True)


def stored(clickhouse: Client) -> int:
    return int(clickhouse.query("SELECT count() FROM invite.series_cache").result_rows[0][0])


def from_scratch(clickhouse: Client, f: ClickFilter, interval: str) -> list[Any]:
    """The series with nothing stored (what it was before the cache)."""
    kept = clickhouse.query("SELECT * FROM invite.series_cache").result_rows
    clear_stores(clickhouse)
    points = queries.timeseries(clickhouse, f, interval)
    clear_stores(clickhouse)
    if kept:
        clickhouse.insert("invite.series_cache", [list(row) for row in kept])
    return points


def events_from_scratch(clickhouse: Client, f: ClickFilter, interval: str) -> dict[int, Figures]:
    return {int(row[1]): funnel_events._figures(row[2:])
            for row in funnel_events.read_figures(clickhouse, f, interval=interval)}


def tamper(clickhouse: Client, name: str, f: ClickFilter, interval: str, bucket: datetime,
           value: str) -> None:
    """A newer stored row for the bucket with the same high-water marks: what a series shows
    for it says whether it read the store."""
    key = series_cache.series_key(name, interval, f)
    high_water = clickhouse.query(
        "SELECT argMax(high_water, computed_at) FROM invite.series_cache "
        "WHERE key = {key:String} AND bucket = {bucket:DateTime('UTC')}",
        parameters={"key": key, "bucket": bucket}).result_rows[0][0]
    clickhouse.insert("invite.series_cache", [[key, bucket, value, high_water]],
                      column_names=["key", "bucket", "value", "high_water"])


def three_days_of_clicks(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(at=DAY + hours(n)) for n in (1, 5, 26, 50)])
    insert_clicks(clickhouse, [click(partner_id=TREE.leaf, at=DAY + hours(n)) for n in (2, 49)])


@pytest.mark.parametrize("f", [THREE_DAYS, SUBTREE], ids=["everyone", "subtree"])
@pytest.mark.parametrize("interval", ["day", "hour"])
def test_a_series_asked_again_reads_its_closed_buckets_from_the_store(
    clickhouse: Client, f: ClickFilter, interval: str,
) -> None:
    three_days_of_clicks(clickhouse)
    first = queries.timeseries(clickhouse, f, interval)
    assert stored(clickhouse) > 0

    tamper(clickhouse, "clicks", f, interval, DAY, "7,6,5")

    again = queries.timeseries(clickhouse, f, interval)
    assert (again[0].clicks, again[0].human_clicks, again[0].unique_visitors) == (7, 6, 5)
    assert again[1:] == first[1:]


def test_a_late_click_in_a_closed_bucket_is_counted(clickhouse: Client) -> None:
    three_days_of_clicks(clickhouse)
    queries.timeseries(clickhouse, THREE_DAYS, "day")
    tamper(clickhouse, "clicks", THREE_DAYS, "day", DAY, "7,6,5")

    insert_clicks(clickhouse, [click(at=DAY + hours(3))])  # a part newer than the stored day

    series = queries.timeseries(clickhouse, THREE_DAYS, "day")
    assert [p.clicks for p in series] == [4, 1, 2]
    assert series == from_scratch(clickhouse, THREE_DAYS, "day")


def test_a_click_in_another_bucket_leaves_the_stored_ones_valid(clickhouse: Client) -> None:
    three_days_of_clicks(clickhouse)
    queries.timeseries(clickhouse, THREE_DAYS, "hour")
    tamper(clickhouse, "clicks", THREE_DAYS, "hour", DAY + hours(1), "7,6,5")

    insert_clicks(clickhouse, [click(at=DAY + hours(60))])  # its part covers hour 60 alone

    series = queries.timeseries(clickhouse, THREE_DAYS, "hour")
    assert series[1].clicks == 7
    assert series[60].clicks == 1


def test_a_merge_keeps_what_is_stored_valid(clickhouse: Client) -> None:
    three_days_of_clicks(clickhouse)
    queries.timeseries(clickhouse, THREE_DAYS, "day")
    tamper(clickhouse, "clicks", THREE_DAYS, "day", DAY, "7,6,5")

    clickhouse.command("OPTIMIZE TABLE invite.clicks_totals_daily FINAL")

    assert queries.timeseries(clickhouse, THREE_DAYS, "day")[0].clicks == 7


def test_rebuilding_the_views_or_migrating_clears_the_store(clickhouse: Client) -> None:
    three_days_of_clicks(clickhouse)
    queries.timeseries(clickhouse, THREE_DAYS, "day")
    assert stored(clickhouse) > 0

    rebuild_views(clickhouse)

    assert stored(clickhouse) == 0
    assert queries.timeseries(clickhouse, THREE_DAYS, "day") == from_scratch(
        clickhouse, THREE_DAYS, "day")


def test_buckets_without_clicks_are_stored_empty_and_filled_by_a_late_click(
    clickhouse: Client,
) -> None:
    insert_clicks(clickhouse, [click(at=DAY + hours(1))])
    assert [p.clicks for p in queries.timeseries(clickhouse, THREE_DAYS, "day")] == [1, 0, 0]
    assert stored(clickhouse) == 3

    insert_clicks(clickhouse, [click(at=DAY + hours(30))])

    assert [p.clicks for p in queries.timeseries(clickhouse, THREE_DAYS, "day")] == [1, 1, 0]


def test_one_partners_own_hours_come_from_raw_clicks_and_are_not_stored(
    clickhouse: Client,
) -> None:
    three_days_of_clicks(clickhouse)
    f = ClickFilter(start=DAY, end=DAY + timedelta(days=3), partner_id=TREE.sub)

    assert queries.series_tables(f, "hour") == ()
    assert sum(p.clicks for p in queries.timeseries(clickhouse, f, "hour")) == 4
    assert stored(clickhouse) == 0


def test_open_buckets_and_a_partial_first_one_are_not_kept() -> None:
    f = ClickFilter(start=DAY + timedelta(minutes=30), end=DAY + hours(6))
    now = DAY + hours(4.5)

    closed = series_cache.closed_buckets(f, series_cache.UNITS["hour"], now)

    assert closed == [DAY + hours(n) for n in (1, 2, 3)]


def insert_credited(clickhouse: Client, rows: list[list[Any]]) -> None:
    clickhouse.insert("invite.events_credited", rows, column_names=NAMES)


@pytest.mark.parametrize("scope", [{}, {"partner_id": "r1", "include_downline": True}],
                         ids=["everyone", "subtree"])
def test_events_of_closed_buckets_stay_exact_through_late_rows_and_deletes(
    clickhouse: Client, scope: dict[str, Any],
) -> None:
    inserts, _ = generate(seed=11)
    f = ClickFilter(start=START, end=START + timedelta(days=24), **scope)
    for batch in inserts[:3]:
        insert_credited(clickhouse, batch)
    first = funnel_events.figures_by_bucket(clickhouse, f, "day")
    assert first == events_from_scratch(clickhouse, f, "day")
    assert stored(clickhouse) > 0

    for batch in inserts[3:]:  # late rows, cancellations and re-credits in stored buckets
        insert_credited(clickhouse, batch)
        assert funnel_events.figures_by_bucket(clickhouse, f, "day") == events_from_scratch(
            clickhouse, f, "day")

    clickhouse.command("DELETE FROM invite.events_daily WHERE user_id = '7'",
                       settings={"lightweight_deletes_sync": 2})
    clickhouse.command("DELETE FROM invite.events_downline_daily WHERE user_id = '7'",
                       settings={"lightweight_deletes_sync": 2})
    assert funnel_events.figures_by_bucket(clickhouse, f, "day") == events_from_scratch(
        clickhouse, f, "day")


def test_random_late_clicks_between_questions_never_show_a_stale_bucket(
    clickhouse: Client,
) -> None:
    rng = random.Random(5)
    filters = [THREE_DAYS, SUBTREE,
               ClickFilter(start=DAY + timedelta(minutes=17), end=DAY + timedelta(days=2, hours=5)),
               ClickFilter(start=DAY, end=DAY + timedelta(days=3), campaign="launch")]
    three_days_of_clicks(clickhouse)
    for _ in range(12):
        insert_clicks(clickhouse, [
            click(partner_id=rng.choice([TREE.sub, TREE.leaf, TREE.other]),
                  at=DAY + timedelta(minutes=rng.randrange(3 * 24 * 60)),
                  campaign=rng.choice(["launch", "summer"]))
            for _ in range(rng.randrange(1, 4))])
        if rng.random() < 0.3:
            clickhouse.command("OPTIMIZE TABLE invite.clicks_totals_all_hourly FINAL")
        f, interval = rng.choice(filters), rng.choice(["day", "hour"])
        assert queries.timeseries(clickhouse, f, interval) == from_scratch(
            clickhouse, f, interval)


def test_a_series_ending_now_computes_the_current_hour_every_time(clickhouse: Client) -> None:
    now = datetime.now(UTC)
    f = ClickFilter(start=now - timedelta(hours=5), end=now + timedelta(seconds=1))
    insert_clicks(clickhouse, [click(at=now - timedelta(hours=3))])
    assert sum(p.clicks for p in queries.timeseries(clickhouse, f, "hour")) == 1

    insert_clicks(clickhouse, [click(at=now)])

    assert sum(p.clicks for p in queries.timeseries(clickhouse, f, "hour")) == 2
