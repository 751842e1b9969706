"""Where a question's clicks are read from: a materialized view for whole hours or days, raw
`clicks` for the partial hour or day at either end of the range.

Every source yields the same columns, so one outer query aggregates them whatever was read:
`t` (the bucket's start), `key` (a breakdown's value, '' otherwise), `outcome`, `n_clicks`,
`n_human` (people's clicks) and `visitor_state` (people's visitor ids, a HyperLogLog state).
Views count whole buckets only; the raw edges make the range exact to the millisecond, and they
are the freshest, smallest part.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from analytics.schema import DATABASE

HOUR: Final = timedelta(hours=1)
DAY: Final = timedelta(days=1)
# FINAL collapses ReplacingMergeTree copies of a click that merges have not merged yet; copies
# share `ts`, hence its partition, so there is no need to merge across partitions. Counting
# questions do not read FINAL: the views count what was inserted, the batcher inserts a click
# once (it looks click ids up before inserting, and retries carry deduplication tokens), and a
# raw edge read FINAL would disagree with the views only about copies nothing inserts.
RAW_SETTINGS: Final = "do_not_merge_across_partitions_select_final = 1"
# The views' state (analytics.schema.VISITORS_STATE), computed from raw clicks.
RAW_VISITORS_STATE: Final = "uniqCombinedStateIf(14)(visitor_id, is_human = 1)"


@dataclass(frozen=True)
class Tier:
    """A view's target table holding whole buckets of `unit`; `t` is the bucket's start."""

    table: str
    unit: timedelta
    t: str


@dataclass(frozen=True)
class Rollup:
    """Views of the same columns at finer and finer buckets, coarsest first.

    A range reads whole days from the day table, the whole hours left at its ends from the
    hour table, and the partial hours left from raw `clicks`: a day's visitor state merges in
    constant time, the raw reads stay small.
    """

    tiers: tuple[Tier, ...]
    outcome: str = "outcome"


def _daily(table: str) -> Tier:
    return Tier(table, DAY, "toDateTime(day, 'UTC')")


TOTALS: Final = Rollup((_daily("clicks_totals_daily"), Tier("clicks_totals_hourly", HOUR, "hour")))
DOWNLINE: Final = Rollup(
    (_daily("clicks_downline_daily"), Tier("clicks_downline_hourly", HOUR, "hour"))
)
PARTNER_DAILY: Final = Rollup((_daily("clicks_partner_daily"),))
# No campaign in its key (eight times fewer states to merge): a breakdown by country etc. for
# one campaign reads raw clicks.
BREAKDOWN: Final = Rollup(
    (_daily("clicks_breakdown_daily"), Tier("clicks_breakdown_hourly", HOUR, "hour")),
    outcome="'credited'",
)
# A subtree's breakdown by country etc.: its descendants' credited clicks by day; the root's own
# clicks come from `clicks` (Source.whole_raw).
DESCENDANTS_BREAKDOWN: Final = Rollup(
    (_daily("clicks_descendants_breakdown_daily"),), outcome="'credited'"
)
# No view: everything from `clicks`.
RAW: Final = Rollup(())


@dataclass(frozen=True)
class Conditions:
    """One question's filter, written for the view and for raw `clicks` (same parameters)."""

    view: list[str]
    raw: list[str]
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Source:
    """A rollup plus what to read from it: the key expressions and the conditions."""

    rollup: Rollup
    conditions: Conditions
    view_key: str = "''"
    raw_key: str = "''"
    # Conditions on `clicks` read over the whole range beside the rollup: rows its views leave
    # out (a subtree root's own clicks, one primary-key range). Same parameters.
    whole_raw: tuple[str, ...] = ()


def floor_to(value: datetime, unit: timedelta) -> datetime:
    value = value.astimezone(UTC)
    floored = value.replace(minute=0, second=0, microsecond=0)
    return floored.replace(hour=0) if unit == DAY else floored


def ceil_to(value: datetime, unit: timedelta) -> datetime:
    floored = floor_to(value, unit)
    return floored if floored == value else floored + unit


def union_sql(
    source: Source, start: datetime, end: datetime, t_unit: timedelta | None = None,
    *, visitors: bool = True,
) -> tuple[str, dict[str, Any]]:
    """A subquery of the common columns over [start, end); bucket starts are floored to t_unit
    (None: no buckets, `t` is constant). Without `visitors`, there is no `visitor_state` (the
    counts alone are much cheaper to read from raw clicks)."""
    state = ", visitors AS visitor_state" if visitors else ""
    raw_state = f", {RAW_VISITORS_STATE} AS visitor_state" if visitors else ""
    conditions = source.conditions
    parameters = dict(conditions.parameters)
    parts = []
    left = [(start, end)]
    for tier in source.rollup.tiers:
        whole: list[tuple[datetime, datetime]] = []
        rest: list[tuple[datetime, datetime]] = []
        for low, high in left:
            body_low, body_high = ceil_to(low, tier.unit), floor_to(high, tier.unit)
            if body_low >= body_high:
                rest.append((low, high))
                continue
            whole.append((body_low, body_high))
            rest.extend(r for r in ((low, body_low), (body_high, high)) if r[0] < r[1])
        left = rest
        if whole:
            ranges = _ranges(tier.t, "DateTime('UTC')", whole, parameters)
            where = " AND ".join([ranges, *conditions.view])
            parts.append(
                f"SELECT {_bucket(tier.t, t_unit)} AS t, {source.view_key} AS key, "  # noqa: S608
                f"{source.rollup.outcome} AS outcome, clicks AS n_clicks, "
                f"human_clicks AS n_human{state} FROM {DATABASE}.{tier.table} WHERE {where}"
            )
    raw = [(left, conditions.raw)] if left else []
    if source.whole_raw:
        raw.append(([(start, end)], list(source.whole_raw)))
    for raw_ranges, raw_conditions in raw:
        ranges = _ranges("ts", "DateTime64(3, 'UTC')", raw_ranges, parameters)
        where = " AND ".join([ranges, *raw_conditions])
        raw_t = _bucket("toDateTime(ts, 'UTC')", t_unit)
        parts.append(
            f"SELECT {raw_t} AS t, "  # noqa: S608
            f"{source.raw_key} AS key, outcome, toUInt64(count()) AS n_clicks, "
            f"toUInt64(countIf(is_human = 1)) AS n_human{raw_state} FROM {DATABASE}.clicks "
            f"WHERE {where} GROUP BY t, key, outcome"
        )
    return " UNION ALL ".join(parts), parameters


def _ranges(
    column: str, type_name: str, ranges: list[tuple[datetime, datetime]],
    parameters: dict[str, Any],
) -> str:
    """`column` within any of the ranges, bounds bound as parameters (added to `parameters`)."""
    clauses = []
    for low, high in ranges:
        index = len(parameters)
        low_name, high_name = f"r{index}_low", f"r{index}_high"
        parameters[low_name], parameters[high_name] = low, high
        clauses.append(
            f"({column} >= {{{low_name}:{type_name}}} AND {column} < {{{high_name}:{type_name}}})"
        )
    return "(" + " OR ".join(clauses) + ")"


def _bucket(expression: str, unit: timedelta | None) -> str:
    if unit is None:
        return "toDateTime(0, 'UTC')"
    if unit == HOUR:
        return f"toStartOfHour({expression})"
    return f"toDateTime(toDate({expression}), 'UTC')"
