"""Where a funnel question's credited events are read from: whole days from `events_daily`, the
whole hours left at the ends from `events_hourly`, the partial hours from `events_by_time` (schema
migration 11). Every part yields the same rows, a user's live events per (key, bucket,
event type): `key`, `t`, `event_type`, `user_key` and the sums `n` (events), `n_ftd`, `n_amount`,
`n_ftd_amount`, `n_lots`, `n_revenue`. A user may have several rows in a bucket (one per part, or
per partner when re-crediting moved the user); none has `n < 0`, so the users with `n > 0` are
the ones with a live event, counted once by `uniqExact`.

One partner's own events (no downline) and the breakdown by partner are primary-key ranges of
`events_credited` (ordered by partner) and are read there whole.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from analytics.events.schema import DATABASE, USER_KEY
from analytics.filters import ClickFilter
from analytics.rollups import (
    DAY,
    HOUR,
    bucket_expression,
    partner_conditions,
    ranges_clause,
    split_whole,
    subtree_root,
)

# Credited events counting in a figure (the views hold no others).
COUNTED: Final = "partner_id != '' AND reversed = 0"
# The views' `user_key` (analytics.events.schema.USER_KEY) computed from a credited row.
RAW_USER_KEY: Final = USER_KEY.split(" MATERIALIZED ", 1)[1]
_SUMS: Final = (
    ("n", "events", "sum(sign)"),
    ("n_ftd", "first_deposits", "sum(sign * is_first_deposit)"),
    ("n_amount", "amount", "sum(sign * amount)"),
    ("n_ftd_amount", "first_deposit_amount", "sum(sign * is_first_deposit * amount)"),
    ("n_lots", "lots", "sum(sign * lots)"),
    ("n_revenue", "broker_revenue", "sum(sign * broker_revenue)"),
)
# (table, unit, its bucket as a DateTime) of each view, coarsest first: everyone's, a subtree's.
_TIERS: Final = (
    ("events_daily", DAY, "toDateTime(day, 'UTC')"),
    ("events_hourly", HOUR, "hour"),
)
_DOWNLINE_TIERS: Final = (
    ("events_downline_daily", DAY, "toDateTime(day, 'UTC')"),
    ("events_downline_hourly", HOUR, "hour"),
)
_UNITS: Final = {"hour": HOUR, "day": DAY}


def reads_raw(f: ClickFilter, key: str) -> bool:
    """One partner's own events, or a breakdown by partner: a few primary-key ranges of raw."""
    return (f.partner_id is not None and not f.include_downline) or key == "partner_id"


def per_user_rows(
    f: ClickFilter, key: str = "''", interval: str | None = None,
    where: tuple[str, ...] = (), parameters: dict[str, Any] | None = None, *,
    views: bool = True,
) -> tuple[str, dict[str, Any]]:
    """A UNION ALL of the filter's per-user rows over [start, end), bucketed by `interval`
    (None: one bucket), keyed by `key` (an expression on the credited columns); `where` adds
    conditions (with `parameters`) valid on every part. `views=False` reads `events_credited`
    alone (what a question cost before the views: the benchmark's baseline)."""
    partner, bound = partner_conditions(f)
    conditions = [*partner, *where]
    bound.update(parameters or {})
    t_unit = _UNITS[interval] if interval else None
    left = [(f.start, f.end)]
    parts = []
    tiers, in_partner = _tiers(f, partner, bound)
    in_views = [*in_partner, *where]
    for table, unit, t in tiers if views and not reads_raw(f, key) else ():
        if t_unit is not None and unit > t_unit:
            continue  # a day's row cannot be split into hours
        whole, left = split_whole(left, unit)
        if whole:
            ranges = ranges_clause(t, "DateTime('UTC')", whole, bound)
            sums = ", ".join(f"{column} AS {name}" for name, column, _ in _SUMS)
            parts.append(
                f"SELECT {key} AS key, {bucket_expression(t, t_unit)} AS t, event_type, "
                f"user_key, {sums} FROM {DATABASE}.{table} FINAL "
                f"WHERE {' AND '.join([ranges, *in_views])}"
            )
    if left:
        ranges = ranges_clause("ts", "DateTime64(3, 'UTC')", left, bound)
        sums = ", ".join(f"{expression} AS {name}" for name, _, expression in _SUMS)
        raw_t = bucket_expression("toDateTime(ts, 'UTC')", t_unit)
        # events_by_time holds the counted rows alone, ordered by time.
        table, counted = (("events_credited", [COUNTED]) if reads_raw(f, key) or not views
                          else ("events_by_time", []))
        parts.append(
            f"SELECT {key} AS key, {raw_t} AS t, event_type, "
            f"{RAW_USER_KEY} AS user_key, {sums} FROM {DATABASE}.{table} "
            f"WHERE {' AND '.join([ranges, *counted, *conditions])} "
            "GROUP BY key, t, event_type, user_key"
        )
    return " UNION ALL ".join(parts), bound


def _tiers(
    f: ClickFilter, partner: list[str], bound: dict[str, Any]
) -> tuple[tuple[tuple[str, timedelta, str], ...], list[str]]:
    """The views for the filter, and its partner conditions on them: a subtree's question reads
    the per-ancestor views within its root (its partner conditions say just that), the others
    read everyone's views."""
    root = subtree_root(f)
    if root is None:
        return _TIERS, partner
    bound["root"] = root
    campaign = ["campaign = {campaign:String}"] if f.campaign is not None else []
    return _DOWNLINE_TIERS, ["ancestor_id = {root:String}", *campaign]


def click_ids(f: ClickFilter, *where: str) -> tuple[str, dict[str, Any]]:
    """The registration clicks of the users with events counted in the range, `where` the
    conditions hold (a superset: rows not read FINAL, so a cancelled event's click may be among
    them)."""
    conditions, bound = partner_conditions(f)
    conditions += ["click_id != ''", *where]
    left: list[tuple[datetime, datetime]] = [(f.start, f.end)]
    parts = []
    for table, unit, t in _TIERS:
        whole, left = split_whole(left, unit)
        if whole:
            ranges = ranges_clause(t, "DateTime('UTC')", whole, bound)
            parts.append(f"SELECT click_id FROM {DATABASE}.{table} "
                         f"WHERE {' AND '.join([ranges, *conditions])}")
    if left:
        ranges = ranges_clause("ts", "DateTime64(3, 'UTC')", left, bound)
        parts.append(f"SELECT click_id FROM {DATABASE}.events_by_time "
                     f"WHERE {' AND '.join([ranges, *conditions])}")
    return f"SELECT DISTINCT click_id FROM ({' UNION ALL '.join(parts)})", bound

