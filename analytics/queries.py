"""The questions marketing asks of ClickHouse, one function each; SQL built apart from running it.

Every value a caller supplies reaches ClickHouse as a bound parameter (`{name:Type}`), never as
SQL text: the only strings spliced into statements are the table, column and function names of
the whitelists below (hence the `noqa: S608`, ruff's string-built-SQL warning).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics import closed_clicks, kept_days, rollups, series_cache
from analytics.filters import MAX_BREAKDOWN_LIMIT, ClickFilter
from analytics.rollups import CREDITED, Closer, Conditions, Source, click_source, raw_where
from analytics.schema import DATABASE
from edge.errors import InvalidInput

MAX_HOURLY_RANGE: Final = timedelta(days=31)
QUERY_TIMEOUT_S: Final = 30

# The settings ride in the statement's own SETTINGS clause (chDB's raw_stream reads a whole
# export into memory before the first byte when they are given per call).
QUERY_SETTINGS: Final = f" SETTINGS {rollups.RAW_SETTINGS}, max_execution_time = {QUERY_TIMEOUT_S}"

INTERVALS: Final = {"hour": rollups.HOUR, "day": rollups.DAY}
_BUCKET_FUNCTIONS: Final = {"hour": "toStartOfHour", "day": "toStartOfDay"}
# API name → column. Registrations carry only partner and campaign, so only those two
# breakdowns report registrations here (a link's come through its clicks: analytics/links.py).
# `link` is the code as the click recorded it (an alias when the link was opened by its alias).
DIMENSIONS: Final = {
    "country": "country",
    "device": "device",
    "os": "os",
    "browser": "browser",
    "referrer": "referer_host",
    "campaign": "campaign",
    "partner": "partner_id",
    "subId": "sub_id",
    "link": "code",
}
_CONVERSION_DIMENSIONS: Final = frozenset({"campaign", "partner_id"})


@dataclass(frozen=True)
class Query:
    sql: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Summary:
    clicks: int
    human_clicks: int
    unique_visitors: int
    registrations: int
    suspended_clicks: int
    orphan_clicks: int | None  # None: the question was about a partner, orphans have none
    unresolved_clicks: int | None

    @property
    def bot_clicks(self) -> int:
        return self.clicks - self.human_clicks

    @property
    def conversion_rate(self) -> float | None:
        """Registrations per unique visitor; None without visitors."""
        if not self.unique_visitors:
            return None
        return round(self.registrations / self.unique_visitors, 4)


@dataclass(frozen=True)
class SeriesPoint:
    start: datetime
    clicks: int
    human_clicks: int
    unique_visitors: int
    registrations: int

    @property
    def bot_clicks(self) -> int:
        return self.clicks - self.human_clicks


@dataclass(frozen=True)
class BreakdownRow:
    key: str
    clicks: int
    human_clicks: int
    unique_visitors: int
    registrations: int | None  # None for dimensions registrations do not record

    @property
    def bot_clicks(self) -> int:
        return self.clicks - self.human_clicks


# Aggregates over a rollup union (analytics/rollups.py): counts are sums, visitors merge their
# states into one distinct count.
CLICK_COUNTS: Final = (
    f"sumIf(n_clicks, {CREDITED}) AS credited_clicks, "
    f"sumIf(n_human, {CREDITED}) AS human_clicks"
)
CLICK_METRICS: Final = (
    f"{CLICK_COUNTS}, uniqCombinedMergeIf(14)(visitor_state, {CREDITED}) AS unique_visitors"
)
BY_PEOPLE: Final = "human_clicks DESC, credited_clicks DESC, key"


def _over(source: Source, f: ClickFilter, columns: str, tail: str = "",
          t_unit: timedelta | None = None, closer: Closer | None = None) -> Query:
    """`closer`: where the stored rows of the range's ended days come from (none: read)."""
    closed = closer(source, f) if closer is not None and t_unit is None else None
    union, parameters = rollups.union_sql(source, f.start, f.end, t_unit, closed=closed)
    return Query(f"SELECT {columns} FROM ({union}) {tail}{QUERY_SETTINGS}", parameters)  # noqa: S608


def select_final(
    columns: str, table: str, where: str, tail: str = "", settings: str = QUERY_SETTINGS
) -> str:
    """A statement over one table of `invite`, read FINAL; every part comes from this module."""
    return f"SELECT {columns} FROM {DATABASE}.{table} FINAL WHERE {where} {tail}{settings}"  # noqa: S608


def summary_clicks_query(f: ClickFilter, closer: Closer | None = None) -> Query:
    columns = (
        f"{CLICK_METRICS}, sumIf(n_clicks, outcome = 'suspended') AS suspended_clicks, "
        "sumIf(n_clicks, outcome = 'orphan') AS orphan_clicks, "
        "sumIf(n_clicks, outcome = 'unresolved') AS unresolved_clicks"
    )
    return _over(click_source(f), f, columns, closer=closer)


def registrations_query(f: ClickFilter) -> Query:
    """Registrations credited to a partner within the filter, from `conversions`."""
    where, parameters = raw_where(f, "event_type = 'registration'", "partner_id != ''")
    return Query(select_final("count()", "conversions", where), parameters)


def rows(client: Client, query: Query) -> Sequence[Sequence[Any]]:
    return client.query(query.sql, parameters=query.parameters).result_rows


def registrations(client: Client, f: ClickFilter) -> int:
    """Registrations credited to a partner within the filter."""
    return int(rows(client, registrations_query(f))[0][0])


def registrations_by_bucket(client: Client, f: ClickFilter, interval: str) -> dict[int, int]:
    """Registrations per bucket start (seconds)."""
    _, query = timeseries_queries(f, interval)
    return {int(row[0]): int(row[1]) for row in rows(client, query)}


def summary(client: Client, f: ClickFilter,
            registered: Callable[[], int] | None = None) -> Summary:
    """`registered`: the registrations (registrations), asked beside."""
    row = [int(value) for value in rows(
        client, summary_clicks_query(f, closed_clicks.closer(client)))[0]]
    clicks, humans, visitors, suspended, orphans, unresolved = row
    registrations_ = registered() if registered is not None else registrations(client, f)
    return Summary(
        clicks=clicks, human_clicks=humans, unique_visitors=visitors,
        registrations=registrations_, suspended_clicks=suspended,
        orphan_clicks=None if f.partner_scoped else orphans,
        unresolved_clicks=None if f.partner_scoped else unresolved,
    )


def check_interval(f: ClickFilter, interval: str) -> timedelta:
    step = INTERVALS.get(interval)
    if step is None:
        raise InvalidInput(f"interval {interval[:20]!r} must be one of {', '.join(INTERVALS)}")
    if interval == "hour" and f.end - f.start > MAX_HOURLY_RANGE:
        raise InvalidInput(
            f"interval=hour covers at most {MAX_HOURLY_RANGE.days} days of from..to; "
            "use interval=day or a shorter range"
        )
    return step


def bucket_starts(f: ClickFilter, interval: str) -> list[datetime]:
    """Every bucket of the range, oldest first: the first starts at or before `start`."""
    step = check_interval(f, interval)
    first = f.start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if interval == "day":
        first = first.replace(hour=0)
    buckets = []
    while first < f.end:
        buckets.append(first)
        first += step
    return buckets


def timeseries_queries(f: ClickFilter, interval: str) -> tuple[Query, Query]:
    step = check_interval(f, interval)
    by_bucket = "GROUP BY bucket ORDER BY bucket"
    source = click_source(f, hourly=step == rollups.HOUR, credited_only=True)
    clicks = _over(source, f, f"toUnixTimestamp(t) AS bucket, {CLICK_METRICS}", by_bucket, step)
    bucket = f"toUnixTimestamp({_BUCKET_FUNCTIONS[interval]}(ts)) AS bucket"
    where, parameters = raw_where(f, "event_type = 'registration'", "partner_id != ''")
    registrations = Query(
        select_final(f"{bucket}, count()", "conversions", where, by_bucket), parameters
    )
    return clicks, registrations


def series_tables(f: ClickFilter, interval: str) -> tuple[str, ...]:
    """The views a series' whole buckets are read from (none: it reads raw clicks)."""
    step = INTERVALS[interval]
    source = click_source(f, hourly=step == rollups.HOUR, credited_only=True)
    return () if source.whole_raw else tuple(
        tier.table for tier in source.rollup.tiers if tier.unit == step)


def _clicks_by_bucket(client: Client, f: ClickFilter, interval: str) -> dict[int, tuple[int, ...]]:
    clicks_query, _ = timeseries_queries(f, interval)
    return {int(row[0]): tuple(int(value) for value in row[1:])
            for row in rows(client, clicks_query)}


def timeseries(client: Client, f: ClickFilter, interval: str,
               registered: Callable[[], dict[int, int]] | None = None) -> list[SeriesPoint]:
    """One point per bucket of the range, zero-filled. The clicks of closed buckets come from
    analytics.series_cache while their views have not changed; registrations are asked
    (`registered`: registrations_by_bucket, asked beside)."""
    clicks = series_cache.by_bucket(
        client, f, interval, "clicks", series_tables(f, interval),
        lambda within: _clicks_by_bucket(client, within, interval),
        lambda counts: ",".join(map(str, counts)),
        lambda text: tuple(map(int, text.split(","))))
    registrations = registered() if registered is not None else registrations_by_bucket(
        client, f, interval)
    points = []
    for start in bucket_starts(f, interval):
        key = int(start.timestamp())
        total, humans, visitors = clicks.get(key, (0, 0, 0))
        points.append(SeriesPoint(
            start=start, clicks=int(total), human_clicks=int(humans),
            unique_visitors=int(visitors), registrations=registrations.get(key, 0),
        ))
    return points


def dimension_column(by: str) -> str:
    column = DIMENSIONS.get(by)
    if column is None:
        raise InvalidInput(f"by {by[:20]!r} must be one of {', '.join(DIMENSIONS)}")
    return column


# Dimensions with thousands of values: their top-N is found by counts alone first, and visitors
# are merged for those keys only (merging visitor states is the expensive part). For the others
# one pass is cheaper (docs/benchmarks.md, "Queries").
MANY_KEYS: Final = frozenset({"partner_id", "code", "sub_id"})


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_BREAKDOWN_LIMIT:
        raise InvalidInput(f"limit {limit} must be between 1 and {MAX_BREAKDOWN_LIMIT}")


def breakdown_ranked_query(f: ClickFilter, by: str, limit: int,
                           closer: Closer | None = None) -> Query:
    """The top `limit` values of a dimension with their visitors, people first: bots never push a
    value up."""
    column = dimension_column(by)
    _check_limit(limit)
    tail = f"GROUP BY key ORDER BY {BY_PEOPLE} LIMIT {{limit:UInt32}}"
    query = _over(click_source(f, by=column), f, f"key, {CLICK_METRICS}", tail, closer=closer)
    return Query(query.sql, {**query.parameters, "limit": limit})


def breakdown_top_query(f: ClickFilter, by: str, limit: int,
                        closer: Closer | None = None) -> Query:
    """The top `limit` keys of a dimension by counts alone, people first (then breakdown_query
    for their visitors)."""
    column = dimension_column(by)
    _check_limit(limit)
    source = click_source(f, by=column)
    union, parameters = rollups.union_sql(
        source, f.start, f.end, visitors=False, closed=closer(source, f) if closer else None
    )
    sql = (
        f"SELECT key, {CLICK_COUNTS} FROM ({union}) "  # noqa: S608
        f"GROUP BY key ORDER BY {BY_PEOPLE} LIMIT {{limit:UInt32}}{QUERY_SETTINGS}"
    )
    return Query(sql, {**parameters, "limit": limit})


def breakdown_query(f: ClickFilter, by: str, keys: Sequence[str],
                    closer: Closer | None = None) -> Query:
    """Counts and unique visitors of the given keys of a dimension; their ended days from the
    rows kept for every key (those breakdown_top_query reads: one entry for both, whichever
    keys are on top)."""
    column = dimension_column(by)
    source = click_source(f, by=column)
    closed = closer(source, f) if closer is not None else None
    in_keys = [f"{source.view_key} IN {{keys:Array(String)}}"]
    in_raw_keys = f"{source.raw_key} IN {{keys:Array(String)}}"
    source = replace(source, conditions=Conditions(
        view=[*source.conditions.view, *in_keys],
        raw=[*source.conditions.raw, in_raw_keys],
        parameters={**source.conditions.parameters, "keys": list(keys)},
    ), whole_raw=(*source.whole_raw, in_raw_keys) if source.whole_raw else ())
    union, parameters = rollups.union_sql(source, f.start, f.end, closed=closed,
                                          closed_where="key IN {keys:Array(String)}")
    return Query(f"SELECT key, {CLICK_METRICS} FROM ({union}) "  # noqa: S608
                 f"GROUP BY key ORDER BY {BY_PEOPLE}{QUERY_SETTINGS}", parameters)


def breakdown_registrations_query(f: ClickFilter, by: str,
                                  keys: Sequence[str] | None) -> Query | None:
    """Registrations per value of a dimension that has them (None: it has none), among `keys`
    (None: every value)."""
    column = dimension_column(by)
    if column not in _CONVERSION_DIMENSIONS:
        return None
    among = [] if keys is None else [f"{column} IN {{keys:Array(String)}}"]
    where, parameters = raw_where(f, "event_type = 'registration'", "partner_id != ''", *among)
    return Query(
        select_final(f"{column} AS key, count()", "conversions", where, "GROUP BY key"),
        {**parameters, **({} if keys is None else {"keys": list(keys)})},
    )


def has_registrations(by: str) -> bool:
    """Whether a breakdown's rows count registrations (partners and campaigns; a link's come
    through its clicks: analytics/links.py)."""
    return dimension_column(by) in _CONVERSION_DIMENSIONS


def breakdown_registrations(client: Client, f: ClickFilter, by: str,
                            keys: Sequence[str] | None) -> dict[str, int] | None:
    """breakdown_registrations_query's counts; None for a dimension without registrations."""
    query = breakdown_registrations_query(f, by, keys)
    if query is None:
        return None
    return {str(key): int(count) for key, count in rows(client, query)}


def breakdown_keys(client: Client, f: ClickFilter, by: str, limit: int,
                   closer: Closer | None = None) -> list[str] | None:
    """The top keys of a dimension of many values, found by counts alone (what else a question
    asks of them can start then); None for the others, whose top rows come with their visitors
    in one statement, and where the clicks are read raw (one partner's own: a second pass over
    them would cost more than the visitors of every key)."""
    column = dimension_column(by)
    if column not in MANY_KEYS or click_source(f, by=column).rollup is rollups.RAW:
        return None
    if column == "sub_id" and kept_days.closed_end(f) is not None:
        return None  # tens to hundreds of values, their ended days kept: one pass costs less
    return [str(row[0]) for row in rows(
        client, breakdown_top_query(f, by, limit, closer or closed_clicks.closer(client)))]


def breakdown(client: Client, f: ClickFilter, by: str, limit: int,
              keys: Sequence[str] | None = None, closer: Closer | None = None,
              registered: Callable[[], dict[str, int] | None] | None = None,
              ) -> list[BreakdownRow]:
    """The top rows of a dimension; `keys`: its top keys as breakdown_keys found them, with
    `closer` (the same for both: its kept days are looked up once); `registered`: the
    registrations of those keys (or of every value), asked beside (breakdown_registrations)."""
    closer = closer or closed_clicks.closer(client)
    if keys is None:
        keys = breakdown_keys(client, f, by, limit, closer)
    if keys is not None:
        found = rows(client, breakdown_query(f, by, keys, closer)) if keys else []
    else:
        found = rows(client, breakdown_ranked_query(f, by, limit, closer))
        keys = [str(row[0]) for row in found]
    if not keys:
        return []
    registrations = registered() if registered is not None else breakdown_registrations(
        client, f, by, keys)
    return [
        BreakdownRow(
            key=str(key), clicks=int(total), human_clicks=int(humans),
            unique_visitors=int(visitors),
            registrations=None if registrations is None else registrations.get(str(key), 0),
        )
        for key, total, humans, visitors in found
    ]
