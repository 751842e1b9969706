"""Closed buckets of the time series, kept once computed (schema migration 15): a series asks the
engine again only for the buckets whose data changed since.

A bucket's figures change only when a part of a table it is read from covers its time and holds
rows that were not there when it was computed. Every insert gets a block number higher than any
before it, and a delete or update gives the parts it rewrites a data version higher still. So a
bucket is stored with each table's high-water mark (the highest block number or data version of
its parts, read just before computing), and it is still right while no active part covering its
time has a higher one. A merge of parts the bucket already saw keeps their numbers; a merge with a
newer part takes the newer number, so the buckets that merged part covers are computed again: a
miss, never a wrong figure. Nothing computed while a delete or update of the tables is being
applied is kept. Swapped or emptied tables restart their numbers: every migration,
`rebuild_views` and an erasure clear the table (so must anyone changing the tables by hand).

Only whole buckets that have ended are kept, and only for series read from views (their raw
edges, and raw tables with a TTL, are asked every time). A question reads the valid stored
buckets and asks the engine for the rest: from the first bucket not stored (or no longer valid)
to the end of its range, and a partial first bucket.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Final, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from analytics.filters import ClickFilter

DATABASE: Final = "invite"
TABLE: Final = "series_cache"
# Part of every key: bump it when what a series computes changes, so stored buckets of the old
# computation are never read.
VERSION: Final = 2  # 2: the funnel's buckets as comma-separated figures
# Rows not computed again within this time go (a bucket asked again is computed again).
KEEP_DAYS: Final = 35
DDL: Final = (
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.{TABLE} (key String, bucket DateTime('UTC'), "
    "value String, high_water String, computed_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    "ENGINE = ReplacingMergeTree(computed_at) ORDER BY (key, bucket) "
    f"TTL toDateTime(computed_at) + toIntervalDay({KEEP_DAYS})"
)
UNITS: Final = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
log = logging.getLogger("invite.analytics")

V = TypeVar("V")


@dataclass(frozen=True)
class Part:
    """An active part: the time it covers (None: unknown, so all of it), its newest number and
    its rows."""

    low: datetime | None
    high: datetime | None  # inclusive
    newest: int
    rows: int = 0
    blocks: tuple[int, int] = (0, 0)  # its first and last block numbers

    def holds(self, blocks: tuple[int, int]) -> bool:
        """Whether it holds the rows of a part of these blocks (itself, or merged from it)."""
        return self.blocks[0] <= blocks[0] and blocks[1] <= self.blocks[1]

    def covers(self, start: datetime, end: datetime) -> bool:
        """Whether it may hold rows of [start, end)."""
        return (self.low is None or self.low < end) and (self.high is None or self.high >= start)


@dataclass(frozen=True)
class State:
    """The tables' parts now, and each table's high-water mark."""

    high_water: dict[str, int]
    parts: dict[str, list[Part]]

    def valid(self, bucket: datetime, unit: timedelta, stored: Mapping[str, int]) -> bool:
        newer = self.newer(stored)
        return newer is not None and not any(part.covers(bucket, bucket + unit) for part in newer)

    def newer(self, stored: Mapping[str, int]) -> list[Part] | None:
        """The parts newer than the marks stored (None: a table read has none: all are)."""
        newer: list[Part] = []
        for table in self.high_water:
            then = stored.get(table)
            if then is None:
                return None
            newer.extend(part for part in self.parts.get(table, []) if part.newest > then)
        return newer


def _bound(moment: datetime, day: date, *, end: bool) -> datetime | None:
    """A part's bound from system.parts: its time, else its date (whole day), else unknown."""
    if moment.replace(tzinfo=UTC) != _EPOCH:
        return moment.replace(tzinfo=UTC)
    if day != _EPOCH.date():
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return start + timedelta(days=1) - timedelta(microseconds=1) if end else start
    return None


def read_state(client: Client, tables: Sequence[str]) -> State:
    found = client.query(
        "SELECT table, min_time, max_time, min_date, max_date, "
        "greatest(max_block_number, toInt64(data_version)), rows, min_block_number, "
        "max_block_number FROM system.parts "
        "WHERE active AND database = {database:String} AND table IN {tables:Array(String)}",
        parameters={"database": DATABASE, "tables": list(tables)},
    ).result_rows
    high_water = dict.fromkeys(tables, 0)
    parts: dict[str, list[Part]] = {}
    for table, min_time, max_time, min_date, max_date, newest, rows, first, last in found:
        high_water[table] = max(high_water[table], int(newest))
        parts.setdefault(table, []).append(Part(
            _bound(min_time, min_date, end=False), _bound(max_time, max_date, end=True),
            int(newest), int(rows), (int(first), int(last))))
    return State(high_water, parts)


def mutating(client: Client, tables: Sequence[str]) -> bool:
    """Whether a delete or update of the tables is still being applied: its parts' new data
    versions may come after what a series read, so nothing computed now is kept."""
    return bool(client.query(
        "SELECT count() FROM system.mutations WHERE database = {database:String} "
        "AND table IN {tables:Array(String)} AND NOT is_done",
        parameters={"database": DATABASE, "tables": list(tables)},
    ).result_rows[0][0])


def series_key(name: str, interval: str, f: ClickFilter) -> str:
    """Which series: the part's name, the interval and everything of the filter but its range."""
    scope = {field: value for field, value in asdict(f).items() if field not in ("start", "end")}
    described = json.dumps([VERSION, name, interval, scope], sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()


def _floor(moment: datetime, unit: timedelta) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if unit == UNITS["day"] else moment


def _ceil(moment: datetime, unit: timedelta) -> datetime:
    floored = _floor(moment, unit)
    return floored if floored == moment else floored + unit


def closed_buckets(f: ClickFilter, unit: timedelta, now: datetime) -> list[datetime]:
    """The whole buckets of the range that have ended by now."""
    first, last = _ceil(f.start, unit), min(_floor(f.end, unit), _floor(now, unit))
    count = max(0, int((last - first) / unit))
    return [first + unit * index for index in range(count)]


def _stored(client: Client, key: str, buckets: Sequence[datetime]
            ) -> dict[datetime, tuple[str, dict[str, int]]]:
    if not buckets:
        return {}
    found = client.query(
        f"SELECT bucket, argMax(value, computed_at), argMax(high_water, computed_at) "  # noqa: S608
        f"FROM {DATABASE}.{TABLE} WHERE key = {{key:String}} "
        "AND bucket >= {low:DateTime('UTC')} AND bucket <= {high:DateTime('UTC')} "
        "GROUP BY bucket",
        parameters={"key": key, "low": buckets[0], "high": buckets[-1]},
    ).result_rows
    marks: dict[str, dict[str, int]] = {}  # buckets stored together share theirs
    for _, _, high_waters in found:
        if high_waters not in marks:
            marks[high_waters] = {str(table): int(high_water)
                                  for table, high_water in json.loads(high_waters).items()}
    return {bucket.replace(tzinfo=UTC): (str(value), marks[high_waters])
            for bucket, value, high_waters in found}


def _store(client: Client, key: str, rows: Iterable[tuple[datetime, str]],
           high_water: Mapping[str, int]) -> None:
    written = json.dumps(dict(high_water))
    data = [[key, bucket, value, written] for bucket, value in rows]
    if data:
        client.insert(f"{DATABASE}.{TABLE}", data,
                      column_names=["key", "bucket", "value", "high_water"])


def by_bucket(
    client: Client, f: ClickFilter, interval: str, name: str, tables: Sequence[str],
    compute: Callable[[ClickFilter], dict[int, V]], encode: Callable[[V], str],
    decode: Callable[[str], V], now: datetime | None = None,
) -> dict[int, V]:
    """compute(f) (values by bucket start, in seconds) with its closed buckets read from the
    cache where still valid. `tables`: what compute reads whole buckets from (none: no cache)."""
    unit = UNITS[interval]
    closed = closed_buckets(f, unit, now or datetime.now(UTC)) if tables else []
    if not closed:
        return compute(f)
    key = series_key(name, interval, f)
    try:
        state = read_state(client, tables)
        stored = _stored(client, key, closed)
    except ClickHouseError as exc:  # a server user without the rights: no cache
        log.warning("series cache unreadable, computing every bucket: %s", exc)
        return compute(f)
    found: dict[int, V] = {}
    fresh_from = None
    newer: dict[int, list[Part] | None] = {}  # per marks stored (shared by their buckets)
    decoded: dict[str, V] = {}
    for bucket in closed:
        hit = stored.get(bucket)
        if hit is not None and id(hit[1]) not in newer:
            newer[id(hit[1])] = state.newer(hit[1])
        parts = newer[id(hit[1])] if hit is not None else None
        if parts is None or any(part.covers(bucket, bucket + unit) for part in parts):
            fresh_from = bucket
            break
        if hit is not None and hit[0]:  # '' is a bucket without figures
            if hit[0] not in decoded:
                decoded[hit[0]] = decode(hit[0])
            found[int(bucket.timestamp())] = decoded[hit[0]]
    # Checked before computing: a mutation that starts later gets a number above the high-water
    # marks read, so its parts are seen to be newer.
    keep = fresh_from is not None and not mutating(client, tables)
    live: dict[int, V] = {}
    if f.start < closed[0]:  # the partial first bucket
        live.update(compute(_within(f, f.start, closed[0])))
    if fresh_from is not None:
        live.update(compute(_within(f, fresh_from, f.end)))
    elif closed[-1] + unit < f.end:
        live.update(compute(_within(f, closed[-1] + unit, f.end)))
    found.update(live)
    if keep and fresh_from is not None:
        computed = [(bucket, encode(live[second])) for bucket in closed if bucket >= fresh_from
                    for second in [int(bucket.timestamp())] if second in live]
        empty = [(bucket, "") for bucket in closed if bucket >= fresh_from
                 and int(bucket.timestamp()) not in live]
        try:
            _store(client, key, [*computed, *empty], state.high_water)
        except ClickHouseError as exc:
            log.warning("series cache not written: %s", exc)
    return {second: value for second, value in sorted(found.items())}


def _within(f: ClickFilter, start: datetime, end: datetime) -> ClickFilter:
    return replace(f, start=start, end=end)
