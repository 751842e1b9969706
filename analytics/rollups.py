"""Where a question's clicks are read from: which rollup answers it (the click source), and within
it a materialized view for whole hours or days, raw `clicks` for the partial hour or day at
either end of the range.

Every source yields the same columns, so one outer query aggregates them whatever was read:
`t` (the bucket's start), `key` (a breakdown's value, '' otherwise), `outcome`, `n_clicks`,
`n_human` (people's clicks) and `visitor_state` (people's visitor ids, a HyperLogLog state).
Views count whole buckets only; the raw edges make the range exact to the millisecond, and they
are the freshest, smallest part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from analytics.filters import ClickFilter
from analytics.schema import BREAKDOWN_COLUMNS, DATABASE, LINK_BREAKDOWN_COLUMNS

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
CREDITED: Final = "outcome = 'credited'"
# Column → `dimension` in the breakdown views.
VIEW_DIMENSIONS: Final = {column: dimension for dimension, column in BREAKDOWN_COLUMNS.items()}


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
# Everyone's for no campaign: hours without it (one visitor state per hour to merge, not one per
# campaign); days as above (a day's few states per campaign cost little).
TOTALS_ALL: Final = Rollup(
    (_daily("clicks_totals_daily"), Tier("clicks_totals_all_hourly", HOUR, "hour"))
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
# Link codes and sub-IDs, the same way: everyone's, and a subtree's descendants'.
LINKS_BREAKDOWN: Final = Rollup((_daily("clicks_links_daily"),), outcome="'credited'")
DESCENDANTS_LINKS: Final = Rollup((_daily("clicks_descendants_links_daily"),), outcome="'credited'")
LINK_DIMENSIONS: Final = {column: dimension for dimension, column in LINK_BREAKDOWN_COLUMNS.items()}
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


def _in_partner(param: str, include_downline: bool) -> str:
    if include_downline:
        return f"(partner_id = {{{param}:String}} OR has(ancestors, {{{param}:String}}))"
    return f"partner_id = {{{param}:String}}"


def partner_conditions(f: ClickFilter) -> tuple[list[str], dict[str, Any]]:
    """The filter's partner, scope and campaign as conditions on clicks, conversions and the
    per-partner view (all have partner_id, ancestors and campaign)."""
    conditions: list[str] = []
    parameters: dict[str, Any] = {}
    if f.partner_id is not None:
        conditions.append(_in_partner("partner_id", f.include_downline))
        parameters["partner_id"] = f.partner_id
    if f.scope_partner_id is not None:
        conditions.append(_in_partner("scope_partner_id", True))
        parameters["scope_partner_id"] = f.scope_partner_id
    if f.campaign is not None:
        conditions.append("campaign = {campaign:String}")
        parameters["campaign"] = f.campaign
    return conditions, parameters


def raw_where(f: ClickFilter, *extra: str) -> tuple[str, dict[str, Any]]:
    """The filter as a WHERE clause valid on both clicks and conversions, with its parameters."""
    conditions, parameters = partner_conditions(f)
    conditions = [
        "ts >= {start:DateTime64(3, 'UTC')}", "ts < {end:DateTime64(3, 'UTC')}", *conditions,
        *extra,
    ]
    return " AND ".join(conditions), {"start": f.start, "end": f.end, **parameters}


def subtree_root(f: ClickFilter) -> str | None:
    """The partner whose whole subtree (by the clicks' ancestor snapshots) is the question."""
    if f.partner_id is not None and f.include_downline:
        return f.partner_id if f.scope_partner_id in (None, f.partner_id) else None
    if f.partner_id is None:
        return f.scope_partner_id
    return None


def click_source(
    f: ClickFilter, by: str | None = None, hourly: bool = False, credited_only: bool = False
) -> Source:
    """Which rollup answers the question and with which conditions.

    `by` is a breakdown's column (None for totals); `hourly` asks for hour buckets;
    `credited_only` leaves out the rows of other outcomes (a series counts nothing else). Everyone's
    questions read the partner-less views, a subtree's the per-ancestor view, one partner's
    own clicks are one primary-key range of `clicks` and are read there.
    """
    partner, parameters = partner_conditions(f)
    campaign = ["campaign = {campaign:String}"] if f.campaign is not None else []
    everyone = f.partner_id is None and f.scope_partner_id is None
    one_partner = f.partner_id is not None and not f.include_downline
    credited = [CREDITED] if by is not None or credited_only else []
    raw = Conditions(view=[], raw=[*partner, *credited], parameters=parameters)
    root = subtree_root(f)
    in_views = {**VIEW_DIMENSIONS, **LINK_DIMENSIONS}
    if by is not None and by not in ("campaign", "partner_id") and by not in in_views:
        return Source(RAW, raw, raw_key=by)  # no view holds it: raw clicks
    if by is not None and by not in ("campaign", "partner_id"):
        everyones, descendants = (
            (LINKS_BREAKDOWN, DESCENDANTS_LINKS) if by in LINK_DIMENSIONS
            else (BREAKDOWN, DESCENDANTS_BREAKDOWN)
        )
        dimension = {**parameters, "dimension": in_views[by]}
        if f.campaign is not None or not (everyone or root is not None):
            return Source(RAW, raw, raw_key=by)
        if everyone:
            conditions = Conditions(
                view=["dimension = {dimension:String}"], raw=raw.raw, parameters=dimension
            )
            return Source(everyones, conditions, view_key="value", raw_key=by)
        # The view holds the root's descendants; its own clicks are read apart. A partner is
        # never among its own ancestors (the registry refuses cycles), so none counts twice.
        conditions = Conditions(
            view=["ancestor_id = {root:String}", "dimension = {dimension:String}"],
            raw=["has(ancestors, {root:String})", *credited],
            parameters={**dimension, "root": root},
        )
        return Source(
            descendants, conditions, view_key="value", raw_key=by,
            whole_raw=("partner_id = {root:String}", *credited),
        )
    key = by or "''"
    if one_partner:
        return Source(RAW, raw, raw_key=key)
    if by == "partner_id" or (root is None and not everyone):
        if hourly:
            return Source(RAW, raw, raw_key=key)
        conditions = Conditions(view=[*partner, *credited], raw=raw.raw, parameters=parameters)
        return Source(PARTNER_DAILY, conditions, view_key=key, raw_key=key)
    if everyone:
        # No campaign asked for or about: the hours without it.
        any_campaign = by is None and f.campaign is None
        conditions = Conditions(view=[*campaign, *credited], raw=raw.raw, parameters=parameters)
        return Source(TOTALS_ALL if any_campaign else TOTALS, conditions, view_key=key,
                      raw_key=key)
    conditions = Conditions(
        view=["ancestor_id = {root:String}", *campaign, *credited],
        raw=[_in_partner("root", True), *campaign, *credited],
        parameters={**parameters, "root": root},
    )
    return Source(DOWNLINE, conditions, view_key=key, raw_key=key)


# A click's chain: its ancestors (root first) and its own partner.
CHAIN: Final = "arrayPushBack(ancestors, partner_id)"
# Which of the given sibling roots ({roots}) a conversion's or event's chain passes through;
# siblings are never on one chain, so it belongs to one of them at most.
SUBTREE_KEY: Final = f"arrayFirst(a -> has({{roots:Array(String)}}, a), {CHAIN})"
# The same for clicks, many more rows: one row per element of the chain, kept when it is one of
# the roots (a set lookup; a constant array in a lambda or hasAny costs four times as much).
_CHAIN_ELEMENT: Final = f"arrayJoin({CHAIN})"
_IN_ROOTS: Final = "key IN {roots:Array(String)}"


def subtrees_source(f: ClickFilter, roots: list[str]) -> Source:
    """The credited clicks of each root's subtree (by the clicks' ancestor snapshots), keyed by
    root: the IB tree's rows. The admin's read the per-ancestor views; a partner token's read the
    per-partner view, whose ancestor snapshots keep them inside its own subtree exactly."""
    scoped = ClickFilter(start=f.start, end=f.end, campaign=f.campaign,
                         scope_partner_id=f.scope_partner_id)
    conditions, parameters = partner_conditions(scoped)
    parameters = {**parameters, "roots": roots}
    within = [_IN_ROOTS, *conditions, CREDITED]
    if f.scope_partner_id is None:
        campaign = ["campaign = {campaign:String}"] if f.campaign is not None else []
        view = ["ancestor_id IN {roots:Array(String)}", *campaign, CREDITED]
        return Source(DOWNLINE, Conditions(view=view, raw=within, parameters=parameters),
                      view_key="ancestor_id", raw_key=_CHAIN_ELEMENT)
    return Source(PARTNER_DAILY, Conditions(view=within, raw=within, parameters=parameters),
                  view_key=_CHAIN_ELEMENT, raw_key=_CHAIN_ELEMENT)


def floor_to(value: datetime, unit: timedelta) -> datetime:
    value = value.astimezone(UTC)
    floored = value.replace(minute=0, second=0, microsecond=0)
    return floored.replace(hour=0) if unit == DAY else floored


def ceil_to(value: datetime, unit: timedelta) -> datetime:
    floored = floor_to(value, unit)
    return floored if floored == value else floored + unit


@dataclass(frozen=True)
class Closed:
    """The first days of a range, [its start, end), as rows stored by analytics.closed_clicks
    (their `entry`, written by `attempt`)."""

    entry: str
    attempt: str
    end: datetime


# How a question's builder gets the stored rows of its range's ended days (analytics.closed_clicks).
Closer = Callable[[Source, ClickFilter], Closed | None]


def union_sql(
    source: Source, start: datetime, end: datetime, t_unit: timedelta | None = None,
    *, visitors: bool = True, closed: Closed | None = None, closed_where: str = "",
) -> tuple[str, dict[str, Any]]:
    """A subquery of the common columns over [start, end); bucket starts are floored to t_unit
    (None: no buckets, `t` is constant). Without `visitors`, there is no `visitor_state` (the
    counts alone are much cheaper to read from raw clicks). `closed`: the rows of its days are
    read from the store (those matching `closed_where` when given), the rest as usual."""
    state = ", visitors AS visitor_state" if visitors else ""
    raw_state = f", {RAW_VISITORS_STATE} AS visitor_state" if visitors else ""
    conditions = source.conditions
    parameters = dict(conditions.parameters)
    parts = []
    if closed is not None:
        parameters.update(closed_entry=closed.entry, closed_attempt=closed.attempt)
        parts.append(
            f"SELECT t, key, outcome, n_clicks, n_human{', visitor_state' if visitors else ''} "  # noqa: S608
            f"FROM {DATABASE}.closed_clicks WHERE entry = {{closed_entry:String}} "
            "AND attempt = {closed_attempt:String}"
            + (f" AND {closed_where}" if closed_where else "")
        )
        start = closed.end
    left = [(start, end)] if start < end else []
    for tier in source.rollup.tiers:
        if t_unit is not None and tier.unit > t_unit:
            continue  # its rows cannot be split into the finer buckets asked for
        whole, left = split_whole(left, tier.unit)
        if whole:
            ranges = ranges_clause(tier.t, "DateTime('UTC')", whole, parameters)
            where = " AND ".join([ranges, *conditions.view])
            # A tier of the asked unit is bucketed already: not rounded again (a sixth of an
            # hour series).
            bucket = tier.t if tier.unit == t_unit else bucket_expression(tier.t, t_unit)
            parts.append(
                f"SELECT {bucket} AS t, {source.view_key} AS key, "  # noqa: S608
                f"{source.rollup.outcome} AS outcome, clicks AS n_clicks, "
                f"human_clicks AS n_human{state} FROM {DATABASE}.{tier.table} WHERE {where}"
            )
    raw = [(left, conditions.raw)] if left else []
    if source.whole_raw and start < end:
        raw.append(([(start, end)], list(source.whole_raw)))
    for raw_ranges, raw_conditions in raw:
        ranges = ranges_clause("ts", "DateTime64(3, 'UTC')", raw_ranges, parameters)
        where = " AND ".join([ranges, *raw_conditions])
        raw_t = bucket_expression("toDateTime(ts, 'UTC')", t_unit)
        parts.append(
            f"SELECT {raw_t} AS t, "  # noqa: S608
            f"{source.raw_key} AS key, outcome, toUInt64(count()) AS n_clicks, "
            f"toUInt64(countIf(is_human = 1)) AS n_human{raw_state} FROM {DATABASE}.clicks "
            f"WHERE {where} GROUP BY t, key, outcome"
        )
    return " UNION ALL ".join(parts), parameters


def split_whole(
    ranges: list[tuple[datetime, datetime]], unit: timedelta
) -> tuple[list[tuple[datetime, datetime]], list[tuple[datetime, datetime]]]:
    """The whole buckets of `unit` within the ranges, and the partial ones left at their ends."""
    whole: list[tuple[datetime, datetime]] = []
    rest: list[tuple[datetime, datetime]] = []
    for low, high in ranges:
        body_low, body_high = ceil_to(low, unit), floor_to(high, unit)
        if body_low >= body_high:
            rest.append((low, high))
            continue
        whole.append((body_low, body_high))
        rest.extend(r for r in ((low, body_low), (body_high, high)) if r[0] < r[1])
    return whole, rest


def ranges_clause(
    column: str, type_name: str, ranges: list[tuple[datetime, datetime]],
    parameters: dict[str, Any],
) -> str:
    """`column` within any of the ranges, bounds bound as parameters (added to `parameters`)."""
    clauses = []
    for low, high in ranges:
        index = len(parameters)
        low_name, high_name = f"r{index}_low", f"r{index}_high"
        if type_name == "Date":  # whole days
            parameters[low_name], parameters[high_name] = low.date(), high.date()
        else:
            parameters[low_name], parameters[high_name] = low, high
        clauses.append(
            f"({column} >= {{{low_name}:{type_name}}} AND {column} < {{{high_name}:{type_name}}})"
        )
    return "(" + " OR ".join(clauses) + ")"


def bucket_expression(expression: str, unit: timedelta | None) -> str:
    if unit is None:
        return "toDateTime(0, 'UTC')"
    if unit == HOUR:
        return f"toStartOfHour({expression})"
    return f"toDateTime(toDate({expression}), 'UTC')"
