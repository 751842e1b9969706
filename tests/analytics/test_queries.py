"""The analytics questions against embedded ClickHouse, and the SQL they are built from."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import export, partner_scope, queries
from analytics.clickhouse import Client
from analytics.filters import ClickFilter
from edge.errors import InvalidInput
from tests.analytics.fixtures_api import (
    BOT,
    DAY,
    TREE,
    click,
    hours,
    insert_clicks,
    insert_registrations,
    insert_tree,
)

ONE_DAY = ClickFilter(start=DAY, end=DAY + timedelta(days=1))


def day_filter(**scope: object) -> ClickFilter:
    return ClickFilter(start=DAY, end=DAY + timedelta(days=1), **scope)  # type: ignore[arg-type]


def test_summary_counts_people_and_bots_apart(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(), click(), click(), click(**BOT), click(**BOT)])

    result = queries.summary(clickhouse, ONE_DAY)

    assert (result.clicks, result.human_clicks, result.bot_clicks) == (5, 3, 2)


def test_bots_never_count_as_unique_visitors(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(visitor_id="person")] + [click(**BOT) for _ in range(4)])

    assert queries.summary(clickhouse, ONE_DAY).unique_visitors == 1


def test_unique_visitors_count_each_visitor_once(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [
        click(visitor_id="ann"), click(visitor_id="ann", at=DAY + hours(5)),
        click(visitor_id="ann", partner_id=TREE.leaf), click(visitor_id="bob"),
    ])

    result = queries.summary(clickhouse, ONE_DAY)

    assert (result.human_clicks, result.unique_visitors) == (4, 2)


def test_orphan_visits_are_reported_apart_and_never_in_a_partners_numbers(
    clickhouse: Client,
) -> None:
    insert_clicks(clickhouse, [
        click(), click(outcome="orphan"), click(outcome="orphan", **BOT),
        click(outcome="unresolved"),
    ])

    everything = queries.summary(clickhouse, ONE_DAY)
    partner = queries.summary(clickhouse, day_filter(partner_id=TREE.sub))

    assert (everything.clicks, everything.orphan_clicks, everything.unresolved_clicks) == (1, 2, 1)
    assert (partner.clicks, partner.orphan_clicks, partner.unresolved_clicks) == (1, None, None)
    assert queries.breakdown(clickhouse, ONE_DAY, "partner", 20)[0].key == TREE.sub
    assert len(queries.breakdown(clickhouse, ONE_DAY, "partner", 20)) == 1


def test_clicks_of_a_suspended_partner_are_reported_apart(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(), click(outcome="suspended"), click(outcome="suspended")])

    result = queries.summary(clickhouse, day_filter(partner_id=TREE.sub))

    assert (result.clicks, result.suspended_clicks) == (1, 2)


def test_registrations_come_from_conversions(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(visitor_id="ann"), click(visitor_id="bob")])
    insert_registrations(clickhouse, TREE.sub, 1)
    insert_registrations(clickhouse, TREE.sub, 2, event_type="first_deposit")
    insert_registrations(clickhouse, TREE.other, 3)
    insert_registrations(clickhouse, TREE.sub, 4, at=DAY - hours(1))

    mine = queries.summary(clickhouse, day_filter(partner_id=TREE.sub))
    everyone = queries.summary(clickhouse, ONE_DAY)

    assert (mine.registrations, mine.conversion_rate) == (1, 0.5)
    assert everyone.registrations == 4


def test_conversion_rate_is_none_without_visitors(clickhouse: Client) -> None:
    insert_registrations(clickhouse, TREE.sub, 1)

    assert queries.summary(clickhouse, ONE_DAY).conversion_rate is None


def test_the_export_collapses_a_click_inserted_twice_before_a_merge(clickhouse: Client) -> None:
    # The batcher never inserts a click twice (tests/analytics/test_batcher.py); the raw rows
    # of the export are read FINAL, so copies from elsewhere do not show twice there either.
    row = click(visitor_id="ann", at=DAY + hours(10.5))
    insert_clicks(clickhouse, [row])
    insert_clicks(clickhouse, [row, click(visitor_id="bob", at=DAY + hours(10.6))])
    raw = clickhouse.query("SELECT count() FROM invite.clicks").result_rows[0][0]
    assert raw == 3, "the duplicate must still be unmerged for this test to mean anything"

    assert len(_csv_rows(clickhouse, ONE_DAY)) == 2


@pytest.mark.parametrize("scope", [
    {}, {"partner_id": TREE.master, "include_downline": True}, {"partner_id": TREE.sub},
    {"campaign": "launch"},
])
def test_ranges_not_on_hour_or_day_boundaries_count_to_the_millisecond(
    clickhouse: Client, scope: dict[str, Any]
) -> None:
    at = [DAY + hours(h) for h in (0.2, 0.9, 5, 23.5, 24.1, 30, 47.9, 48.3)]
    insert_clicks(clickhouse, [click(at=t, visitor_id=f"v{i}") for i, t in enumerate(at)])
    f = ClickFilter(start=DAY + hours(0.5), end=DAY + hours(48), **scope)  # type: ignore[arg-type]
    inside = [t for t in at if f.start <= t < f.end]

    assert queries.summary(clickhouse, f).clicks == len(inside) == 6
    assert queries.summary(clickhouse, f).unique_visitors == 6
    assert sum(p.clicks for p in queries.timeseries(clickhouse, f, "day")) == 6
    assert sum(p.clicks for p in queries.timeseries(clickhouse, f, "hour")) == 6
    assert sum(r.clicks for r in queries.breakdown(clickhouse, f, "country", 5)) == 6
    assert sum(r.clicks for r in queries.breakdown(clickhouse, f, "partner", 5)) == 6
    assert sum(r.clicks for r in queries.breakdown(clickhouse, f, "campaign", 5)) == 6


def test_top_keys_found_first_give_the_same_rows(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [
        click(TREE.leaf), click(TREE.leaf), click(TREE.leaf, visitor_id="ann"),
        click(TREE.leaf, visitor_id="ann"), click(TREE.sub), click(TREE.other, **BOT),
    ])

    top = queries.breakdown_keys(clickhouse, ONE_DAY, "partner", 2)

    assert top == [TREE.leaf, TREE.sub]  # people first: the bot's partner is not in the top two
    assert queries.breakdown(clickhouse, ONE_DAY, "partner", 2, top) == queries.breakdown(
        clickhouse, ONE_DAY, "partner", 2)
    assert queries.breakdown(clickhouse, ONE_DAY, "partner", 2, top)[0].unique_visitors == 3
    assert queries.breakdown_keys(clickhouse, ONE_DAY, "country", 2) is None  # few values
    # One partner's own clicks are read raw: their visitors in the same pass.
    assert queries.breakdown_keys(clickhouse, day_filter(partner_id=TREE.leaf), "link", 2) is None
    assert queries.breakdown(clickhouse, ONE_DAY, "partner", 2, []) == []
    # Sub-IDs over ended days (kept: analytics.closed_clicks) in one pass; today's in two.
    assert queries.breakdown_keys(clickhouse, ONE_DAY, "subId", 2) is None
    now = datetime.now(UTC)
    assert queries.breakdown_keys(
        clickhouse, ClickFilter(start=now - timedelta(hours=5), end=now), "subId", 2) == []


def test_a_visitor_seen_in_the_views_and_in_the_raw_edge_counts_once(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [
        click(at=DAY + hours(2), visitor_id="ann"),   # a whole hour and day: from the views
        click(at=DAY + hours(30.5), visitor_id="ann"),  # the partial last hour: raw
    ])
    f = ClickFilter(start=DAY, end=DAY + hours(30.75))

    assert queries.summary(clickhouse, f).unique_visitors == 1
    assert queries.breakdown(clickhouse, f, "country", 5)[0].unique_visitors == 1
    assert queries.breakdown(clickhouse, f, "partner", 5)[0].unique_visitors == 1


def test_master_ib_sees_its_sub_ibs_clicks_with_include_downline(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [
        click(TREE.master),
        click(TREE.sub), click(TREE.sub),
        click(TREE.leaf), click(TREE.leaf), click(TREE.leaf),
        click(TREE.other),
    ])
    insert_registrations(clickhouse, TREE.leaf, 2)

    def clicks(partner_id: str, include_downline: bool) -> int:
        f = day_filter(partner_id=partner_id, include_downline=include_downline)
        return queries.summary(clickhouse, f).clicks

    assert clicks(TREE.master, False) == 1
    assert clicks(TREE.master, True) == 6
    assert clicks(TREE.sub, True) == 5
    assert clicks(TREE.leaf, True) == 3
    master_tree = day_filter(partner_id=TREE.master, include_downline=True)
    assert queries.summary(clickhouse, master_tree).registrations == 2
    by_partner = queries.breakdown(clickhouse, master_tree, "partner", 20)
    assert [(row.key, row.clicks, row.registrations) for row in by_partner] == [
        (TREE.leaf, 3, 2), (TREE.sub, 2, 0), (TREE.master, 1, 0),
    ]


def test_a_subtree_breakdown_counts_the_roots_own_clicks_and_its_downlines_once(
    clickhouse: Client,
) -> None:
    insert_clicks(clickhouse, [
        click(TREE.master, country="AE", visitor_id="ann"),  # the root's own click
        click(TREE.sub, country="DE", visitor_id="ann"),
        click(TREE.leaf, country="DE", visitor_id="bob"),
        click(TREE.leaf, country="DE", at=DAY + hours(30.5), visitor_id="bob"),  # a raw edge
        click(TREE.leaf, country="FR", ancestors=[TREE.other]),  # before it moved here
        click(TREE.other, country="DE"),
        click(TREE.sub, country="DE", outcome="suspended"),
    ])
    span = {"start": DAY, "end": DAY + hours(30.75)}

    def by_country(**scope: Any) -> list[tuple[str, int, int]]:
        f = ClickFilter(**span, **scope)
        return [
            (row.key, row.clicks, row.unique_visitors)
            for row in queries.breakdown(clickhouse, f, "country", 20)
        ]

    assert by_country(partner_id=TREE.master, include_downline=True) == [
        ("DE", 3, 2), ("AE", 1, 1),
    ]
    assert by_country(scope_partner_id=TREE.sub) == [("DE", 3, 2)]
    other = [("DE", 1, 1), ("FR", 1, 1)]
    assert by_country(partner_id=TREE.other, include_downline=True) == other
    leaf = [("DE", 2, 1), ("FR", 1, 1)]  # its own clicks, whoever it was under
    assert by_country(partner_id=TREE.leaf, include_downline=True) == leaf


def test_a_roll_up_follows_the_ancestors_recorded_at_click_time(clickhouse: Client) -> None:
    # The affiliate moved from other-ib to master-ib: its earlier click stays with other-ib.
    insert_clicks(clickhouse, [
        click(TREE.leaf, ancestors=[TREE.other]),
        click(TREE.leaf, at=DAY + hours(2)),
    ])

    master = queries.summary(clickhouse, day_filter(partner_id=TREE.master, include_downline=True))
    other = queries.summary(clickhouse, day_filter(partner_id=TREE.other, include_downline=True))

    assert (master.clicks, other.clicks) == (1, 1)


def test_a_partner_scope_never_leaves_its_subtree(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(TREE.master), click(TREE.sub), click(TREE.leaf)])

    own_subtree = day_filter(scope_partner_id=TREE.sub)
    asked_for_master = day_filter(scope_partner_id=TREE.sub, partner_id=TREE.master)

    assert queries.summary(clickhouse, own_subtree).clicks == 2
    assert queries.summary(clickhouse, asked_for_master).clicks == 0


def test_campaign_filter_reads_only_that_campaign(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(campaign="launch"), click(campaign="summer"), click()])
    insert_registrations(clickhouse, TREE.sub, 1, campaign="summer")

    result = queries.summary(clickhouse, day_filter(campaign="summer"))

    assert (result.clicks, result.registrations, result.orphan_clicks) == (1, 1, None)


def test_daily_series_is_zero_filled(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(), click(**BOT), click(at=DAY + timedelta(days=2, hours=23))])
    insert_registrations(clickhouse, TREE.sub, 1, at=DAY + timedelta(days=2))
    f = ClickFilter(start=DAY, end=DAY + timedelta(days=3))

    points = queries.timeseries(clickhouse, f, "day")

    assert [p.start for p in points] == [DAY + timedelta(days=n) for n in range(3)]
    assert [(p.clicks, p.human_clicks, p.bot_clicks, p.registrations) for p in points] == [
        (2, 1, 1, 0), (0, 0, 0, 0), (1, 1, 0, 1),
    ]


def test_registrations_count_where_no_click_was_and_make_no_breakdown_row(
    clickhouse: Client,
) -> None:
    insert_clicks(clickhouse, [click(campaign="launch")])
    insert_registrations(clickhouse, TREE.sub, 2, campaign="launch")
    insert_registrations(clickhouse, TREE.sub, 1, at=DAY + hours(30), campaign="summer")
    f = ClickFilter(start=DAY, end=DAY + timedelta(days=2))

    series = queries.timeseries(clickhouse, f, "day")
    by_campaign = queries.breakdown(clickhouse, f, "campaign", 20)

    assert [(p.clicks, p.registrations) for p in series] == [(1, 2), (0, 1)]
    assert [(r.key, r.clicks, r.registrations) for r in by_campaign] == [("launch", 1, 2)]
    assert queries.summary(clickhouse, f).registrations == 3


def test_hourly_series_covers_every_hour_of_the_range(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(at=DAY + hours(1.5)), click(at=DAY + hours(1.75))])
    f = ClickFilter(start=DAY + hours(0.5), end=DAY + hours(4))

    points = queries.timeseries(clickhouse, f, "hour")

    assert [p.start for p in points] == [DAY + hours(n) for n in range(4)]
    assert [p.clicks for p in points] == [0, 2, 0, 0]
    assert points[1].unique_visitors == 2


@pytest.mark.parametrize("partner", [None, TREE.master])
def test_an_hourly_series_over_whole_days_puts_each_click_in_its_hour(
    clickhouse: Client, partner: str | None
) -> None:
    insert_clicks(clickhouse, [click(at=DAY + hours(13.5)), click(at=DAY + hours(37.25))])
    f = ClickFilter(start=DAY, end=DAY + timedelta(days=2), partner_id=partner,
                    include_downline=partner is not None)

    points = queries.timeseries(clickhouse, f, "hour")

    assert [(p.start, p.clicks) for p in points if p.clicks] == [
        (DAY + hours(13), 1), (DAY + hours(37), 1),
    ]


@pytest.mark.parametrize("partner", [None, TREE.master])
def test_links_and_sub_ids_count_whole_days_from_their_view_and_the_ends_raw(
    clickhouse: Client, partner: str | None
) -> None:
    insert_clicks(clickhouse, [
        click(at=DAY - hours(1), code="early", sub_id="a"),  # before the range
        click(at=DAY + hours(0.5), code="tg", sub_id="a"),  # partial first day
        click(at=DAY + hours(30), code="tg", sub_id="b"),  # a whole day
        click(at=DAY + hours(49), code="ig", sub_id="b", **BOT),  # partial last day
        click(at=DAY + hours(50), code="ig", sub_id="b", outcome="suspended"),
    ])
    f = ClickFilter(start=DAY + hours(0.25), end=DAY + hours(49.5), partner_id=partner,
                    include_downline=partner is not None)

    by_link = queries.breakdown(clickhouse, f, "link", 20)
    by_sub_id = queries.breakdown(clickhouse, f, "subId", 20)

    assert [(r.key, r.clicks, r.human_clicks, r.unique_visitors) for r in by_link] == [
        ("tg", 2, 2, 2), ("ig", 1, 0, 0),
    ]
    assert [(r.key, r.clicks, r.human_clicks) for r in by_sub_id] == [("b", 2, 1), ("a", 1, 1)]


def test_series_days_are_utc_days(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(at=DAY - timedelta(minutes=1)), click(at=DAY)])
    f = ClickFilter(start=DAY - timedelta(days=1), end=DAY + timedelta(days=1))

    assert [p.clicks for p in queries.timeseries(clickhouse, f, "day")] == [1, 1]


def test_breakdown_ranks_by_people_so_bots_never_push_a_value_up(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [
        click(country="DE"), click(country="DE"),
        click(country="FR"), *[click(**{**BOT, "country": "FR"}) for _ in range(5)],
        click(country="AE"),
    ])

    rows = queries.breakdown(clickhouse, ONE_DAY, "country", 2)

    assert [(r.key, r.clicks, r.human_clicks, r.bot_clicks) for r in rows] == [
        ("DE", 2, 2, 0), ("FR", 6, 1, 5),
    ]
    assert rows[0].registrations is None


@pytest.mark.parametrize(
    ("by", "column", "value"),
    [("device", "device", "mobile"), ("os", "os", "iOS"), ("browser", "browser", "Safari"),
     ("referrer", "referer_host", "youtube.com"), ("campaign", "campaign", "summer")],
)
def test_breakdown_by_each_dimension(clickhouse: Client, by: str, column: str, value: str) -> None:
    dimension: dict[str, Any] = {column: value}
    insert_clicks(clickhouse, [click(**dimension), click(**dimension), click()])

    rows = queries.breakdown(clickhouse, ONE_DAY, by, 20)

    assert (rows[0].key, rows[0].clicks, rows[0].unique_visitors) == (value, 2, 2)
    assert sum(row.clicks for row in rows) == 3


def test_csv_streams_a_header_and_every_click_with_its_id(clickhouse: Client) -> None:
    rows = [click(), click(TREE.leaf, **BOT), click(outcome="orphan")]
    insert_clicks(clickhouse, rows)

    exported = _csv_rows(clickhouse, ONE_DAY)

    assert {row["click_id"] for row in exported} == {str(row["click_id"]) for row in rows}
    leaf = next(row for row in exported if row["partner_id"] == TREE.leaf)
    assert (leaf["ancestors"], leaf["is_human"], leaf["kind"]) == (
        f"{TREE.master}>{TREE.sub}", "0", "preview",
    )
    assert exported[0]["ts"].startswith("2025-03-10 00:00:00")


def test_csv_of_a_partner_has_only_its_rows(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(TREE.master), click(TREE.sub), click(outcome="orphan")])

    exported = _csv_rows(clickhouse, day_filter(partner_id=TREE.master, include_downline=True))

    assert sorted(row["partner_id"] for row in exported) == [TREE.master, TREE.sub]


def test_csv_arrives_in_chunks_not_in_one_piece(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [
        click(at=DAY + timedelta(seconds=n), user_agent="x" * 200) for n in range(12_000)
    ])

    chunks = list(export.clicks_csv(clickhouse, ONE_DAY))

    assert len(chunks) > 3
    assert max(len(chunk) for chunk in chunks) <= export.CSV_CHUNK_BYTES
    assert b"".join(chunks).count(b"\n") == 12_001


def test_in_subtree_knows_descendants_from_the_partners_table(clickhouse: Client) -> None:
    insert_tree(clickhouse)

    assert partner_scope.in_subtree(clickhouse, TREE.master, TREE.leaf)
    assert partner_scope.in_subtree(clickhouse, TREE.sub, TREE.sub)
    assert not partner_scope.in_subtree(clickhouse, TREE.sub, TREE.master)
    assert not partner_scope.in_subtree(clickhouse, TREE.master, TREE.other)
    assert not partner_scope.in_subtree(clickhouse, TREE.master, "unknown")


def test_in_subtree_knows_descendants_from_their_clicks(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(TREE.leaf)])

    assert partner_scope.in_subtree(clickhouse, TREE.sub, TREE.leaf)
    assert not partner_scope.in_subtree(clickhouse, TREE.leaf, TREE.sub)


awkward_text = st.text(min_size=1, max_size=40)


def _every_query(f: ClickFilter, partner_id: str, campaign: str) -> list[queries.Query]:
    return [
        queries.summary_clicks_query(f), queries.registrations_query(f),
        *queries.timeseries_queries(f, "day"), *queries.timeseries_queries(f, "hour"),
        *(queries.breakdown_top_query(f, by, 5) for by in queries.DIMENSIONS),
        *(queries.breakdown_ranked_query(f, by, 5) for by in queries.DIMENSIONS),
        *(queries.breakdown_query(f, by, [campaign]) for by in queries.DIMENSIONS),
        queries.breakdown_registrations_query(f, "campaign", [campaign]),  # type: ignore[list-item]
        export.clicks_csv_query(f), *partner_scope.in_subtree_queries(partner_id, campaign),
    ]


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(partner_id=awkward_text, campaign=awkward_text)
def test_any_value_is_bound_never_spliced_into_sql(
    clickhouse: Client, partner_id: str, campaign: str
) -> None:
    asked = ClickFilter(
        start=DAY + hours(0.5), end=DAY + hours(30.5), partner_id=partner_id,
        include_downline=True, campaign=campaign, scope_partner_id=partner_id,
    )
    plain = replace(asked, partner_id="p", campaign="c", scope_partner_id="p")

    for built, reference in zip(
        _every_query(asked, partner_id, campaign), _every_query(plain, "p", "c"), strict=True
    ):
        assert built.sql == reference.sql
    assert queries.summary(clickhouse, asked).clicks == 0
    assert queries.breakdown(clickhouse, asked, "campaign", 5) == []
    assert not partner_scope.in_subtree(clickhouse, partner_id + "x", campaign)


def test_from_must_be_before_to() -> None:
    with pytest.raises(InvalidInput, match=r"from .* must be before to"):
        ClickFilter(start=DAY, end=DAY)


def test_a_range_longer_than_the_maximum_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at most 400 days"):
        ClickFilter(start=DAY, end=DAY + timedelta(days=401))


def test_an_hourly_series_longer_than_a_month_is_refused() -> None:
    f = ClickFilter(start=DAY, end=DAY + timedelta(days=32))
    with pytest.raises(InvalidInput, match="interval=hour covers at most 31 days"):
        queries.timeseries_queries(f, "hour")


def test_unknown_dimension_and_interval_are_refused() -> None:
    with pytest.raises(InvalidInput, match="by 'city' must be one of country"):
        queries.breakdown_top_query(ONE_DAY, "city", 5)
    with pytest.raises(InvalidInput, match="interval 'week' must be one of hour, day"):
        queries.timeseries_queries(ONE_DAY, "week")
    with pytest.raises(InvalidInput, match="limit 0 must be between 1 and 100"):
        queries.breakdown_top_query(ONE_DAY, "country", 0)


def test_the_default_window_is_the_last_30_days() -> None:
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)

    f = ClickFilter.last(now)

    assert (f.start, f.end) == (now - timedelta(days=30), now)


def test_a_partner_or_campaign_question_has_no_orphans() -> None:
    assert not ONE_DAY.partner_scoped
    assert day_filter(partner_id="p").partner_scoped
    assert day_filter(scope_partner_id="p").partner_scoped
    assert day_filter(campaign="c").partner_scoped


def _csv_rows(clickhouse: Client, f: ClickFilter) -> list[dict[str, str]]:
    text = b"".join(export.clicks_csv(clickhouse, f)).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_header_names_every_exported_column() -> None:
    header = next(iter(export._csv_chunks(io.BytesIO(b""))))

    assert header.decode().strip().split(",") == list(export.CSV_COLUMNS)
    assert "click_id" in export.CSV_COLUMNS


def test_click_ids_in_csv_are_uuids(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click()])

    (row,) = _csv_rows(clickhouse, ONE_DAY)

    assert uuid.UUID(row["click_id"])
