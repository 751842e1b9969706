"""The questions marketing asks of ClickHouse, one function each; SQL built apart from running it.

Every value a caller supplies reaches ClickHouse as a bound parameter (`{name:Type}`), never as
SQL text: the only strings spliced into statements are the table, column and function names of
the whitelists below (hence the `noqa: S608`, ruff's string-built-SQL warning).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Final, cast

from clickhouse_connect.driver.client import Client

from analytics.schema import DATABASE
from edge.errors import InvalidInput

DEFAULT_RANGE: Final = timedelta(days=30)
MAX_RANGE: Final = timedelta(days=400)
MAX_HOURLY_RANGE: Final = timedelta(days=31)
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)
DEFAULT_BREAKDOWN_LIMIT: Final = 20
MAX_BREAKDOWN_LIMIT: Final = 100
QUERY_TIMEOUT_S: Final = 30
EXPORT_TIMEOUT_S: Final = 3600
CSV_CHUNK_BYTES: Final = 256 * 1024

# FINAL collapses ReplacingMergeTree copies of a click that background merges have not merged
# yet: cheaper than uniqExact(click_id) (docs/benchmarks.md, "Queries"). Copies of a click are
# the same edge event replayed, so they share `ts`, hence the partition: no need to merge across
# partitions. The settings ride in the statement's own SETTINGS clause: given per call, chDB's
# raw_stream would read the whole export into memory before the first byte.
_READ_SETTINGS: Final = "do_not_merge_across_partitions_select_final = 1"
QUERY_SETTINGS: Final = f" SETTINGS {_READ_SETTINGS}, max_execution_time = {QUERY_TIMEOUT_S}"
EXPORT_SETTINGS: Final = f" SETTINGS {_READ_SETTINGS}, max_execution_time = {EXPORT_TIMEOUT_S}"

INTERVALS: Final = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
_BUCKET_FUNCTIONS: Final = {"hour": "toStartOfHour", "day": "toStartOfDay"}
# API name → column. Registrations carry only partner and campaign, so only those two
# breakdowns report registrations.
DIMENSIONS: Final = {
    "country": "country",
    "device": "device",
    "os": "os",
    "browser": "browser",
    "referrer": "referer_host",
    "campaign": "campaign",
    "partner": "partner_id",
}
_CONVERSION_DIMENSIONS: Final = frozenset({"campaign", "partner_id"})

CSV_COLUMNS: Final = (
    "click_id", "ts", "partner_id", "ancestors", "campaign", "sub_id", "code", "kind",
    "is_human", "outcome", "country", "device", "os", "browser", "bot_family", "referer_host",
    "visitor_id", "first_click", "method",
)
_CSV_EXPRESSIONS: Final = {"ancestors": "arrayStringConcat(ancestors, '>')"}

_CREDITED: Final = "outcome = 'credited'"
_HUMAN: Final = "outcome = 'credited' AND is_human = 1"


@dataclass(frozen=True)
class ClickFilter:
    """Which clicks a question is about: a UTC range [start, end) and an optional partner scope.

    `scope_partner_id` is set for partner tokens: whatever else is asked, only clicks whose
    partner is that partner or has it among the ancestors recorded at click time are read.
    """

    start: datetime
    end: datetime
    partner_id: str | None = None
    include_downline: bool = False
    campaign: str | None = None
    scope_partner_id: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("from", self.start), ("to", self.end)):
            if value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
            if not EARLIEST <= value <= LATEST:
                raise InvalidInput(
                    f"{name} {_iso(value)} is outside {_iso(EARLIEST)}..{_iso(LATEST)}"
                )
        if self.start >= self.end:
            raise InvalidInput(f"from {_iso(self.start)} must be before to {_iso(self.end)}")
        if self.end - self.start > MAX_RANGE:
            raise InvalidInput(
                f"from..to spans {(self.end - self.start).days} days; at most "
                f"{MAX_RANGE.days} days are allowed"
            )

    @classmethod
    def last(cls, now: datetime, **scope: Any) -> ClickFilter:
        """The default window: the DEFAULT_RANGE ending now."""
        return cls(start=now - DEFAULT_RANGE, end=now, **scope)

    @property
    def partner_scoped(self) -> bool:
        """Reads only clicks of some partner or campaign, so orphans have no place in it."""
        return (
            self.partner_id is not None
            or self.scope_partner_id is not None
            or self.campaign is not None
        )


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


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _in_partner(param: str, include_downline: bool) -> str:
    if include_downline:
        return f"(partner_id = {{{param}:String}} OR has(ancestors, {{{param}:String}}))"
    return f"partner_id = {{{param}:String}}"


def _where(f: ClickFilter, *extra: str) -> tuple[str, dict[str, Any]]:
    """The filter as a WHERE clause valid on both clicks and conversions, with its parameters."""
    conditions = ["ts >= {start:DateTime64(3, 'UTC')}", "ts < {end:DateTime64(3, 'UTC')}"]
    parameters: dict[str, Any] = {"start": f.start, "end": f.end}
    if f.partner_id is not None:
        conditions.append(_in_partner("partner_id", f.include_downline))
        parameters["partner_id"] = f.partner_id
    if f.scope_partner_id is not None:
        conditions.append(_in_partner("scope_partner_id", True))
        parameters["scope_partner_id"] = f.scope_partner_id
    if f.campaign is not None:
        conditions.append("campaign = {campaign:String}")
        parameters["campaign"] = f.campaign
    conditions.extend(extra)
    return " AND ".join(conditions), parameters


def _click_metrics() -> str:
    # Distinct 64-bit hashes of visitor ids: exact unless two ids collide in 64 bits (about 3 in
    # a million for 10M visitors), and twice as fast as hashing the strings to 128 bits.
    return (
        f"countIf({_CREDITED}) AS clicks, countIf({_HUMAN}) AS human_clicks, "
        f"uniqExactIf(cityHash64(visitor_id), {_HUMAN}) AS unique_visitors"
    )


def _select(
    columns: str, table: str, where: str, tail: str = "", settings: str = QUERY_SETTINGS
) -> str:
    """A statement over one table of `invite`, read FINAL; every part comes from this module."""
    return f"SELECT {columns} FROM {DATABASE}.{table} FINAL WHERE {where} {tail}{settings}"  # noqa: S608


def summary_clicks_query(f: ClickFilter) -> Query:
    where, parameters = _where(f, "outcome IN ('credited', 'suspended')")
    columns = f"{_click_metrics()}, countIf(outcome = 'suspended') AS suspended_clicks"
    return Query(_select(columns, "clicks", where), parameters)


def registrations_query(f: ClickFilter) -> Query:
    """Registrations credited to a partner within the filter, from `conversions`."""
    where, parameters = _where(f, "event_type = 'registration'", "partner_id != ''")
    return Query(_select("count()", "conversions", where), parameters)


def unattributed_query(f: ClickFilter) -> Query:
    """Orphan (unknown code) and unresolved (registry down) visits: they belong to no partner."""
    where, parameters = _where(f, "partner_id = ''")
    columns = "countIf(outcome = 'orphan'), countIf(outcome = 'unresolved')"
    return Query(_select(columns, "clicks", where), parameters)


def _rows(client: Client, query: Query) -> Sequence[Sequence[Any]]:
    return client.query(query.sql, parameters=query.parameters).result_rows


def summary(client: Client, f: ClickFilter) -> Summary:
    clicks, humans, visitors, suspended = _rows(client, summary_clicks_query(f))[0]
    (registrations,) = _rows(client, registrations_query(f))[0]
    orphans: int | None = None
    unresolved: int | None = None
    if not f.partner_scoped:
        orphans, unresolved = (int(v) for v in _rows(client, unattributed_query(f))[0])
    return Summary(
        clicks=int(clicks), human_clicks=int(humans), unique_visitors=int(visitors),
        registrations=int(registrations), suspended_clicks=int(suspended),
        orphan_clicks=orphans, unresolved_clicks=unresolved,
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
    check_interval(f, interval)
    bucket = f"toUnixTimestamp({_BUCKET_FUNCTIONS[interval]}(ts)) AS bucket"
    by_bucket = "GROUP BY bucket ORDER BY bucket"
    where, parameters = _where(f, _CREDITED)
    clicks = Query(_select(f"{bucket}, {_click_metrics()}", "clicks", where, by_bucket), parameters)
    where, parameters = _where(f, "event_type = 'registration'", "partner_id != ''")
    registrations = Query(
        _select(f"{bucket}, count()", "conversions", where, by_bucket), parameters
    )
    return clicks, registrations


def timeseries(client: Client, f: ClickFilter, interval: str) -> list[SeriesPoint]:
    """One point per bucket of the range, zero-filled."""
    clicks_query, registrations_query_ = timeseries_queries(f, interval)
    clicks = {int(row[0]): row[1:] for row in _rows(client, clicks_query)}
    registrations = {int(row[0]): int(row[1]) for row in _rows(client, registrations_query_)}
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


def breakdown_query(f: ClickFilter, by: str, limit: int) -> Query:
    """The top `limit` values of a dimension, by people first: bots never push a value up."""
    column = dimension_column(by)
    if not 1 <= limit <= MAX_BREAKDOWN_LIMIT:
        raise InvalidInput(f"limit {limit} must be between 1 and {MAX_BREAKDOWN_LIMIT}")
    where, parameters = _where(f, _CREDITED)
    tail = "GROUP BY key ORDER BY human_clicks DESC, clicks DESC, key LIMIT {limit:UInt32}"
    return Query(
        _select(f"{column} AS key, {_click_metrics()}", "clicks", where, tail),
        {**parameters, "limit": limit},
    )


def breakdown_registrations_query(f: ClickFilter, by: str, keys: Sequence[str]) -> Query | None:
    column = dimension_column(by)
    if column not in _CONVERSION_DIMENSIONS:
        return None
    where, parameters = _where(
        f, "event_type = 'registration'", "partner_id != ''", f"{column} IN {{keys:Array(String)}}"
    )
    return Query(
        _select(f"{column} AS key, count()", "conversions", where, "GROUP BY key"),
        {**parameters, "keys": list(keys)},
    )


def breakdown(client: Client, f: ClickFilter, by: str, limit: int) -> list[BreakdownRow]:
    rows = _rows(client, breakdown_query(f, by, limit))
    keys = [str(row[0]) for row in rows]
    registrations: dict[str, int] | None = None
    query = breakdown_registrations_query(f, by, keys) if keys else None
    if query is not None:
        registrations = {str(key): int(count) for key, count in _rows(client, query)}
    return [
        BreakdownRow(
            key=str(key), clicks=int(total), human_clicks=int(humans),
            unique_visitors=int(visitors),
            registrations=None if registrations is None else registrations.get(str(key), 0),
        )
        for key, total, humans, visitors in rows
    ]


def clicks_csv_query(f: ClickFilter) -> Query:
    """Raw click rows in table order, so ClickHouse streams them without sorting the range."""
    where, parameters = _where(f)
    columns = ", ".join(
        f"{_CSV_EXPRESSIONS[name]} AS csv_{name}" if name in _CSV_EXPRESSIONS else name
        for name in CSV_COLUMNS
    )
    tail = "ORDER BY partner_id, ts, click_id"
    return Query(_select(columns, "clicks", where, tail, EXPORT_SETTINGS), parameters)


def clicks_csv(client: Client, f: ClickFilter) -> Iterator[bytes]:
    """The filter's clicks as CSV chunks: a header line, then rows as ClickHouse streams them.

    The query starts here, so a failing ClickHouse raises before the first chunk is asked for;
    the stream holds `client` until the iterator is exhausted or closed.
    """
    query = clicks_csv_query(f)
    stream = client.raw_stream(query.sql, parameters=query.parameters, fmt="CSV")
    return _csv_chunks(cast(IO[bytes], stream))


def _csv_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    try:
        yield (",".join(CSV_COLUMNS) + "\n").encode()
        while chunk := stream.read(CSV_CHUNK_BYTES):
            yield chunk
    finally:
        stream.close()


def in_subtree_queries(root_partner_id: str, partner_id: str) -> tuple[Query, Query]:
    """Whether `partner_id` is below `root_partner_id`: in the partners table, else in the ancestor
    snapshot of any of its clicks (the table may lag behind the registry, or the tree changed)."""
    below = "partner_id = {partner_id:String} AND has(ancestors, {root:String})"
    parameters = {"root": root_partner_id, "partner_id": partner_id}
    return (
        Query(_select("count()", "partners", below), parameters),
        Query(_select("1", "clicks", below, "LIMIT 1"), parameters),
    )


def in_subtree(client: Client, root_partner_id: str, partner_id: str) -> bool:
    if partner_id == root_partner_id:
        return True
    in_partners, in_clicks = in_subtree_queries(root_partner_id, partner_id)
    return int(_rows(client, in_partners)[0][0]) > 0 or bool(_rows(client, in_clicks))
