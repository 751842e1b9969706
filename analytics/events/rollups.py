"""Where a funnel question's credited events are read from: whole days from `events_daily`, the
whole hours left at the ends from `events_hourly`, the partial hours from `events_by_time` (schema
migration 11). Every part yields the same rows, a user's live events per (key, bucket, event
type): `key`, `t`, `event_type`, `user_key` and the sums `n` (events), `n_ftd`, `n_amount`,
`n_ftd_amount`, `n_lots`, `n_revenue`. A user may have several rows in a bucket (one per part, or
per partner when re-crediting moved the user); none has `n < 0`, so the users with `n > 0` are
the ones with a live event, counted once by `uniqExact`.

The views' rows add up when the engine merges their parts: a month's partition is mostly one
merged part, where each row is there once and summed, plus the small parts of the latest inserts.
Only the rows of the buckets those small parts cover (the dirty ranges, from `system.parts` just
before the question) are summed per user while read; the others are read as they are. After the
question, a part that came meanwhile outside those ranges means it is asked again (`read`).
(`FINAL`, which merges while reading, costs 50 ms for a day's rows here.)

One partner's own events (no downline) and the breakdown by partner are primary-key ranges of
`events_credited` (ordered by partner) and are read there whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from analytics.events.schema import COUNTED, DATABASE, ROLLUP_SUMS, USER_KEY_OF_ROW
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

# (name in the rows, the views' column, the same sum over credited rows) of each of the views'
# sums (analytics.events.schema.ROLLUP_SUMS, whose expressions read the credited row as `c`).
_SUMS: Final = tuple(
    (name, column, f"sum({expression.replace('c.', '')})")
    for name, (column, _, expression) in zip(
        ("n", "n_ftd", "n_amount", "n_ftd_amount", "n_lots", "n_revenue"), ROLLUP_SUMS,
        strict=True)
)


@dataclass(frozen=True)
class Tier:
    """A view's table of whole buckets of `unit`: its bucket column (of `column_type`; the table
    is partitioned by its month) and that bucket as a DateTime."""

    table: str
    unit: timedelta
    column: str
    column_type: str
    t: str


# Coarsest first: everyone's, a subtree's.
_TIERS: Final = (
    Tier("events_daily", DAY, "day", "Date", "toDateTime(day, 'UTC')"),
    Tier("events_hourly", HOUR, "hour", "DateTime('UTC')", "hour"),
)
_DOWNLINE_TIERS: Final = (
    Tier("events_downline_daily", DAY, "day", "Date", "toDateTime(day, 'UTC')"),
    Tier("events_downline_hourly", HOUR, "hour", "DateTime('UTC')", "hour"),
)
VIEW_TABLES: Final = tuple(tier.table for tier in (*_TIERS, *_DOWNLINE_TIERS))
ATTEMPTS: Final = 3


@dataclass(frozen=True)
class Part:
    """An active part of a view's table: the buckets [low, high) its rows are in."""

    table: str
    partition: str
    name: str
    rows: int
    low: datetime
    high: datetime


Ranges = list[tuple[datetime, datetime]]


def dirty_ranges(parts: Sequence[Part]) -> dict[str, Ranges]:
    """Per table, the buckets where two parts may hold the same row: in each partition of more
    than one part, those its parts but the largest cover (from the earliest to the latest)."""
    by_partition: dict[tuple[str, str], list[Part]] = {}
    for part in parts:
        by_partition.setdefault((part.table, part.partition), []).append(part)
    found: dict[str, Ranges] = {}
    for (table, _), group in sorted(by_partition.items()):
        if len(group) > 1:
            small = sorted(group, key=lambda part: (part.rows, part.name))[:-1]
            found.setdefault(table, []).append(
                (min(part.low for part in small), max(part.high for part in small)))
    return found


_UNITS: Final = {"hour": HOUR, "day": DAY}


def reads_raw(f: ClickFilter, key: str) -> bool:
    """One partner's own events, or a breakdown by partner: a few primary-key ranges of raw."""
    return (f.partner_id is not None and not f.include_downline) or key == "partner_id"


def bucket_tables(f: ClickFilter, interval: str) -> tuple[str, ...]:
    """The views a series' whole buckets of `interval` are read from (none: it reads raw)."""
    if reads_raw(f, "''"):
        return ()
    tiers, _ = _tiers(f, [], {})
    return tuple(tier.table for tier in tiers if tier.unit == _UNITS[interval])


def per_user_rows(
    f: ClickFilter, key: str = "''", interval: str | None = None,
    where: tuple[str, ...] = (), parameters: dict[str, Any] | None = None, *,
    views: bool = True, dirty: Mapping[str, Ranges] | None = None,
) -> tuple[str, dict[str, Any]]:
    """A UNION ALL of the filter's per-user rows over [start, end), bucketed by `interval`
    (None: one bucket), keyed by `key` (an expression on the credited columns); `where` adds
    conditions (with `parameters`) valid on every part. `dirty`: the views' dirty ranges (None:
    every row is summed while read). `views=False` reads `events_credited` alone (what a
    question cost before the views: the benchmark's baseline)."""
    partner, bound = partner_conditions(f)
    conditions = [*partner, *where]
    bound.update(parameters or {})
    t_unit = _UNITS[interval] if interval else None
    left = [(f.start, f.end)]
    parts = []
    tiers, in_partner = _tiers(f, partner, bound)
    in_views = [*in_partner, *where]
    for tier in tiers if views and not reads_raw(f, key) else ():
        if t_unit is not None and tier.unit > t_unit:
            continue  # a day's row cannot be split into hours
        whole, left = split_whole(left, tier.unit)
        if whole:
            ranges = ranges_clause(tier.column, tier.column_type, whole, bound)
            unsure = (
                "1" if dirty is None else
                ranges_clause(tier.column, tier.column_type, dirty[tier.table], bound)
                if dirty.get(tier.table) else "0"
            )
            # A tier of the interval's own unit is bucketed already (rounding it again costs a
            # sixth of an hour series).
            bucket = tier.t if tier.unit == t_unit else bucket_expression(tier.t, t_unit)
            head = f"SELECT {key} AS key, {bucket} AS t, event_type, user_key"
            within = " AND ".join([ranges, *in_views])
            as_is = ", ".join(f"{column} AS {sum_name}" for sum_name, column, _ in _SUMS)
            summed = ", ".join(f"sum({column}) AS {sum_name}" for sum_name, column, _ in _SUMS)
            parts += [
                f"{head}, {as_is} FROM {DATABASE}.{tier.table} "
                f"WHERE {within} AND NOT {unsure}",
                f"{head}, {summed} FROM {DATABASE}.{tier.table} "
                f"WHERE {within} AND {unsure} GROUP BY key, t, event_type, user_key",
            ]
    if left:
        ranges = ranges_clause("ts", "DateTime64(3, 'UTC')", left, bound)
        sums = ", ".join(f"{expression} AS {name}" for name, _, expression in _SUMS)
        raw_t = bucket_expression("toDateTime(ts, 'UTC')", t_unit)
        # events_by_time holds the counted rows alone, ordered by time.
        table, counted = (("events_credited", [COUNTED]) if reads_raw(f, key) or not views
                          else ("events_by_time", []))
        parts.append(
            f"SELECT {key} AS key, {raw_t} AS t, event_type, "
            f"{USER_KEY_OF_ROW} AS user_key, {sums} FROM {DATABASE}.{table} "
            f"WHERE {' AND '.join([ranges, *counted, *conditions])} "
            "GROUP BY key, t, event_type, user_key"
        )
    return " UNION ALL ".join(parts), bound


def view_parts(client: Client) -> list[Part] | None:
    """The views' active parts now; None when `system.parts` cannot be read (a server user
    without the right: every row is then summed while read, right and slower)."""
    try:
        found = client.query(
            "SELECT table, partition_id, name, rows, min_date, max_date, min_time, max_time "
            "FROM system.parts WHERE active AND database = {database:String} "
            "AND table IN {tables:Array(String)}",
            parameters={"database": DATABASE, "tables": list(VIEW_TABLES)},
        ).result_rows
    except DatabaseError:
        return None
    parts = []
    for table, partition, name, rows, min_date, max_date, min_time, max_time in found:
        if table.endswith("_daily"):
            low = datetime.combine(min_date, time(), UTC)
            high = datetime.combine(max_date, time(), UTC) + DAY
        else:
            low, high = _utc(min_time), _utc(max_time) + HOUR
        parts.append(Part(str(table), str(partition), str(name), int(rows), low, high))
    return parts


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read(client: Client, build: Callable[[Mapping[str, Ranges] | None], tuple[str, dict[str, Any]]]
         ) -> Sequence[Sequence[Any]]:
    """The rows of the statement `build` makes for the views' dirty ranges, asked again when a
    part came meanwhile with rows outside them (rows that may then have been read twice,
    unsummed); after ATTEMPTS, asked with every row summed."""
    for _ in range(ATTEMPTS):
        before = view_parts(client)
        if before is None:
            break
        dirty = dirty_ranges(before)
        sql, parameters = build(dirty)
        found = client.query(sql, parameters=parameters).result_rows
        after = view_parts(client)
        known = {(part.table, part.name) for part in before}
        if after is not None and all(
            any(low <= part.low and part.high <= high for low, high in dirty.get(part.table, []))
            for part in after if (part.table, part.name) not in known
        ):
            return found
    sql, parameters = build(None)
    return client.query(sql, parameters=parameters).result_rows


def _tiers(
    f: ClickFilter, partner: list[str], bound: dict[str, Any]
) -> tuple[tuple[Tier, ...], list[str]]:
    """The views for the filter, and its partner conditions on them: a subtree's question reads
    the per-ancestor views within its root (its partner conditions say just that), the others
    read everyone's views."""
    root = subtree_root(f)
    if root is None:
        return _TIERS, partner
    bound["root"] = root
    campaign = ["campaign = {campaign:String}"] if f.campaign is not None else []
    return _DOWNLINE_TIERS, ["ancestor_id = {root:String}", *campaign]
