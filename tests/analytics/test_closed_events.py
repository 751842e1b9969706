"""The funnel figures of a question's ended days kept in `closed_events` (analytics.events.queries
with analytics.kept_days.keep): asked again, they are read back and merged with the rest, and
equal the figures worked out by hand and the figures asked with nothing stored, through late
rows, cancellations, re-credits and deletes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from analytics.clickhouse import Client
from analytics.events import queries as funnel_events
from analytics.events.queries import Figures
from analytics.filters import ClickFilter
from analytics.schema import clear_stores
from tests.analytics.test_funnel_rollups import (
    CODES,
    COUNTRIES,
    NAMES,
    SPAN,
    START,
    expected,
    generate,
    shown,
)

SCOPES = {
    "everyone": {},
    "subtree": {"partner_id": "r1", "include_downline": True},
    "token": {"scope_partner_id": "a1"},
    "campaign": {"campaign": "x"},
}


def entries(clickhouse: Client) -> int:
    return int(clickhouse.query(
        "SELECT count() FROM invite.closed_events_entries").result_rows[0][0])


def figures(clickhouse: Client, f: ClickFilter) -> tuple[Any, ...]:
    return (funnel_events.figures(clickhouse, f),
            shown(funnel_events.figures_by_key(clickhouse, f, "country", None)),
            shown(funnel_events.figures_by_key(clickhouse, f, "code", list(CODES))))


def from_scratch(clickhouse: Client, f: ClickFilter) -> tuple[Any, ...]:
    clear_stores(clickhouse)
    found = figures(clickhouse, f)
    clear_stores(clickhouse)
    return found


@pytest.mark.parametrize("scope", SCOPES.values(), ids=SCOPES.keys())
def test_stored_days_give_the_figures_worked_out_by_hand(
    clickhouse: Client, scope: dict[str, Any],
) -> None:
    inserts, live = generate(seed=21)
    for rows in inserts:
        clickhouse.insert("invite.events_credited", rows, column_names=NAMES)
    f = ClickFilter(start=START, end=START + SPAN, **scope)

    for _ in range(2):  # computed and stored, then read back
        summary, by_country, by_code = figures(clickhouse, f)
        assert summary == expected(live, f, lambda row: "").get("", Figures())
        assert by_country == expected(live, f, lambda row: row.country)
        assert by_code == expected(live, f, lambda row: row.code)
    assert entries(clickhouse) > 0
    assert set(by_country) <= set(COUNTRIES)


@pytest.mark.parametrize("scope", SCOPES.values(), ids=SCOPES.keys())
def test_late_rows_and_deletes_in_stored_days_are_seen(
    clickhouse: Client, scope: dict[str, Any],
) -> None:
    inserts, _ = generate(seed=22)
    f = ClickFilter(start=START, end=START + SPAN, **scope)
    clickhouse.insert("invite.events_credited", inserts[0], column_names=NAMES)
    for rows in inserts[1:]:  # late rows, cancellations and re-credits of stored days
        figures(clickhouse, f)
        clickhouse.insert("invite.events_credited", rows, column_names=NAMES)
        assert figures(clickhouse, f) == from_scratch(clickhouse, f)
    figures(clickhouse, f)
    for table in ("events_daily", "events_downline_daily"):
        clickhouse.command(f"DELETE FROM invite.{table} WHERE user_id = '3'",  # noqa: S608
                           settings={"lightweight_deletes_sync": 2})
    assert figures(clickhouse, f) == from_scratch(clickhouse, f)


def test_a_range_cut_at_a_millisecond_is_read_in_full(clickhouse: Client) -> None:
    inserts, live = generate(seed=23)
    for rows in inserts:
        clickhouse.insert("invite.events_credited", rows, column_names=NAMES)
    f = ClickFilter(start=START + timedelta(milliseconds=1), end=START + SPAN)

    assert funnel_events.figures(clickhouse, f) == expected(live, f, lambda row: "").get(
        "", Figures())
    assert entries(clickhouse) == 0
