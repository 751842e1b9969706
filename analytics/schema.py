"""The ClickHouse schema of database `invite`, as numbered migrations applied once each."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from analytics import series_cache
from analytics.commissions.schema import MIGRATION_9
from analytics.events.schema import (
    MIGRATION_7,
    MIGRATION_8_EVENTS,
    MIGRATION_11_EVENTS,
    MIGRATION_12_EVENTS,
)
from analytics.registration_codes import MIGRATION_13, MIGRATION_18

log = logging.getLogger("invite.schema")

DATABASE = "invite"


class CommandClient(Protocol):
    def command(self, cmd: str) -> object: ...


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class ClickView:
    """An aggregate of `clicks` kept by a materialized view `{table}_mv` writing into `table`."""

    table: str
    columns: str
    order_by: str
    partition_by: str
    select: str  # reads {source}: the source table in the view, read FINAL to rebuild
    source: str = "clicks"  # or the target of another view (a cascade: days from hours)
    index_granularity: int | None = None  # None: the engine's default (8192 rows)

    @property
    def target_ddl(self) -> str:
        return self.target_ddl_as(self.table)

    def target_ddl_as(self, table: str) -> str:
        """The target table's DDL under another name (to rebuild it beside the live one)."""
        # The batcher's inserts carry a deduplication token and ask the views to deduplicate
        # too, so a retried insert cannot count twice here (needs the window on the target).
        granules = (
            "" if self.index_granularity is None
            else f", index_granularity = {self.index_granularity}"
        )
        return (
            f"CREATE TABLE IF NOT EXISTS {DATABASE}.{table} ({self.columns}) "
            f"ENGINE = AggregatingMergeTree PARTITION BY {self.partition_by} "
            f"ORDER BY ({self.order_by}) SETTINGS non_replicated_deduplication_window = 1000"
            f"{granules}"
        )

    @property
    def view_ddl(self) -> str:
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}.{self.table}_mv "
            f"TO {DATABASE}.{self.table} AS "
            f"{self.select.format(source=f'{DATABASE}.{self.source}')}"
        )

    @property
    def backfill(self) -> str:
        source = f"{DATABASE}.{self.source} FINAL"
        return f"INSERT INTO {DATABASE}.{self.table} {self.select.format(source=source)}"


_AGGREGATES = """
    clicks       SimpleAggregateFunction(sum, UInt64),
    first_clicks SimpleAggregateFunction(sum, UInt64),
    visitors     AggregateFunction(uniq, String)
"""
_HOURLY_KEYS = "hour, campaign, kind, outcome, is_human"
_HOURLY_COLUMNS = """
    hour       DateTime('UTC'),
    campaign   String,
    kind       LowCardinality(String),
    outcome    LowCardinality(String),
    is_human   UInt8,
"""
_HOURLY_SELECT = """
    toStartOfHour(ts) AS hour, campaign, kind, outcome, is_human,
    count() AS clicks, countIf(first_click = 1) AS first_clicks, uniqState(visitor_id) AS visitors
"""
# Breakdowns: one row per (dimension, value) of a click, so a top-20 of any dimension reads
# only its own rows. Dimension → its `clicks` column (`referrer` is the referer's host).
BREAKDOWN_COLUMNS = {
    "country": "country", "device": "device", "os": "os", "browser": "browser",
    "referrer": "referer_host",
}
_BREAKDOWN_PAIRS = ", ".join(
    f"('{dimension}', {column})" for dimension, column in BREAKDOWN_COLUMNS.items()
)

# Migration 2 as it was released; migration 3 replaced its two partner-first views, which made
# "everyone" merge one state per partner and hour (docs/benchmarks.md, "Queries").
_MIGRATION_2_VIEWS: tuple[ClickView, ...] = (
    ClickView(
        table="clicks_hourly",
        columns=f"partner_id String, {_HOURLY_COLUMNS} {_AGGREGATES}",
        order_by=f"partner_id, {_HOURLY_KEYS}",
        partition_by="toYYYYMM(hour)",
        select=f"SELECT partner_id, {_HOURLY_SELECT} FROM {{source}} "
        f"GROUP BY partner_id, {_HOURLY_KEYS}",
    ),
    ClickView(
        table="clicks_downline_hourly",
        columns=f"ancestor_id String, {_HOURLY_COLUMNS} {_AGGREGATES}",
        order_by=f"ancestor_id, {_HOURLY_KEYS}",
        partition_by="toYYYYMM(hour)",
        select=f"SELECT ancestor_id, {_HOURLY_SELECT} FROM {{source}} "
        "ARRAY JOIN arrayPushBack(ancestors, partner_id) AS ancestor_id "
        f"WHERE partner_id != '' GROUP BY ancestor_id, {_HOURLY_KEYS}",
    ),
    ClickView(
        table="clicks_dimensions_daily",
        columns="""
            partner_id String,
            day        Date,
            dimension  LowCardinality(String),
            value      String,
            is_human   UInt8,
            clicks     SimpleAggregateFunction(sum, UInt64),
            visitors   AggregateFunction(uniq, String)
        """,
        order_by="partner_id, dimension, day, value, is_human",
        partition_by="toYYYYMM(day)",
        select="SELECT partner_id, toDate(ts) AS day, pair.1 AS dimension, pair.2 AS value, "
        "is_human, count() AS clicks, uniqState(visitor_id) AS visitors FROM {source} "
        "ARRAY JOIN [('country', country), ('device', device), ('os', os), "
        "('browser', browser), ('referrer', referer_host)] AS pair "
        "GROUP BY partner_id, day, dimension, value, is_human",
    ),
)

# The views the analytics API reads (analytics/rollups.py picks them per question). Visitors are
# HyperLogLog states of people's visitor ids (`uniqCombined(14)`: exact for small sets, within
# about 1% for large ones) that merge across hours, days and partners into one distinct count,
# never a sum of counts. A day's state merges in constant time; `uniq` states grow with the
# visitors and made a 30-day question merge millions of hashes (docs/benchmarks.md, "Queries").
# Day tables are fed from the hour tables (a cascade: their blocks are already aggregated).
VISITORS_STATE = "AggregateFunction(uniqCombined(14), String)"
_COUNTS = (
    "count() AS clicks, countIf(is_human = 1) AS human_clicks, "
    "uniqCombinedStateIf(14)(visitor_id, is_human = 1) AS visitors"
)
_MERGED_COUNTS = (
    "sum(clicks) AS clicks, sum(human_clicks) AS human_clicks, "
    "uniqCombinedMergeState(14)(visitors) AS visitors"
)
_COUNT_COLUMNS = f"""
    clicks        SimpleAggregateFunction(sum, UInt64),
    human_clicks  SimpleAggregateFunction(sum, UInt64),
    visitors      {VISITORS_STATE}
"""
_KEYS = "campaign, outcome"
_KEY_COLUMNS = "campaign String, outcome LowCardinality(String),"


def _hourly_and_daily(
    name: str, key_columns: str, order: str, select_keys: str, from_where: str
) -> tuple[ClickView, ClickView]:
    """`{name}_hourly` from clicks and `{name}_daily` from it. `order` is the sorting key with
    `{t}` for the bucket; `select_keys` computes the keys from clicks in `from_where`."""
    keys = order.replace("{t}, ", "").replace(", {t}", "")
    hourly = ClickView(
        table=f"{name}_hourly",
        columns=f"hour DateTime('UTC'), {key_columns} {_COUNT_COLUMNS}",
        order_by=order.format(t="hour"),
        partition_by="toYYYYMM(hour)",
        select=f"SELECT toStartOfHour(ts) AS hour, {select_keys}, {_COUNTS} FROM {from_where} "
        f"GROUP BY hour, {keys}",
    )
    daily = ClickView(
        table=f"{name}_daily",
        columns=f"day Date, {key_columns} {_COUNT_COLUMNS}",
        order_by=order.format(t="day"),
        partition_by="toYYYYMM(day)",
        select=f"SELECT toDate(hour) AS day, {keys}, {_MERGED_COUNTS} FROM {{source}} "
        f"GROUP BY day, {keys}",
        source=hourly.table,
    )
    return hourly, daily


_MIGRATION_3_VIEWS: tuple[ClickView, ...] = (
    # Everyone's questions: no partner in the key, a few rows per hour.
    *_hourly_and_daily(
        "clicks_totals", _KEY_COLUMNS, "{t}, campaign, outcome", _KEYS, "{source}"
    ),
    # A subtree's roll-up is one key range: every click counts once for its own partner and
    # once for each ancestor of the snapshot it carries (re-parenting never rewrites it).
    *_hourly_and_daily(
        "clicks_downline", f"ancestor_id String, {_KEY_COLUMNS}",
        "ancestor_id, {t}, campaign, outcome", f"ancestor_id, {_KEYS}",
        "{source} ARRAY JOIN arrayPushBack(ancestors, partner_id) AS ancestor_id "
        "WHERE partner_id != ''",
    ),
    # Everyone's top-N of a click dimension (credited clicks): one row per dimension and value;
    # no campaign in the key, so that 30 days merge few states (docs/benchmarks.md, "Queries").
    *_hourly_and_daily(
        "clicks_breakdown", "dimension LowCardinality(String), value String,",
        "dimension, {t}, value", "pair.1 AS dimension, pair.2 AS value",
        f"{{source}} ARRAY JOIN [{_BREAKDOWN_PAIRS}] AS pair WHERE outcome = 'credited'",
    ),
    # Per partner and day, with the ancestor snapshot in the key (it rarely changes, so it adds
    # few rows): breakdowns by partner, inside a subtree too, filter on it exactly.
    ClickView(
        table="clicks_partner_daily",
        columns=f"day Date, partner_id String, ancestors Array(String), {_KEY_COLUMNS} "
        f"{_COUNT_COLUMNS}",
        order_by=f"day, partner_id, ancestors, {_KEYS}",
        partition_by="toYYYYMM(day)",
        select=f"SELECT toDate(ts) AS day, partner_id, ancestors, {_KEYS}, {_COUNTS} "
        f"FROM {{source}} WHERE partner_id != '' GROUP BY day, partner_id, ancestors, {_KEYS}",
    ),
)
_NEW_IN_3 = tuple(view for view in _MIGRATION_3_VIEWS if view not in _MIGRATION_2_VIEWS)
_DROPPED_IN_3 = tuple(view for view in _MIGRATION_2_VIEWS if view not in _MIGRATION_3_VIEWS)

# A row holds a visitor state of up to 12 KB, and a question reads a few rows per day: in
# granules of 8,192 rows it decoded the states of thousands of neighbours for each of them
# (docs/benchmarks.md, "Queries").
VIEW_GRANULE_ROWS = 256
# A subtree's top countries, devices… (credited clicks): one row per ancestor of the click's
# snapshot, not for its own partner, so that the many partners without a downline add no rows
# (three quarters of them on the benchmark's tree, and the insert cost with them); a root's own
# clicks are one primary-key range of `clicks`. Daily only: the partial days at the ends of a
# range are read raw, which costs about what partial hours would (a day's partition is scanned).
DESCENDANTS_BREAKDOWN = ClickView(
    table="clicks_descendants_breakdown_daily",
    columns=f"ancestor_id String, day Date, dimension LowCardinality(String), value String, "
    f"{_COUNT_COLUMNS}",
    order_by="ancestor_id, dimension, day, value",
    partition_by="toYYYYMM(day)",
    select=f"SELECT ancestor_id, toDate(ts) AS day, pair.1 AS dimension, pair.2 AS value, "
    f"{_COUNTS} FROM {{source}} ARRAY JOIN ancestors AS ancestor_id "
    f"ARRAY JOIN [{_BREAKDOWN_PAIRS}] AS pair WHERE outcome = 'credited' AND partner_id != '' "
    "GROUP BY ancestor_id, day, dimension, value",
    index_granularity=VIEW_GRANULE_ROWS,
)
# The views as migration 6 left them.
_MIGRATION_6_VIEWS: tuple[ClickView, ...] = (
    *(replace(view, index_granularity=VIEW_GRANULE_ROWS) for view in _MIGRATION_3_VIEWS),
    DESCENDANTS_BREAKDOWN,
)
# Links and sub-IDs (schema migration 10), credited clicks by day like the breakdowns above:
# everyone's top-20 of link codes or sub-IDs reads its own rows, a subtree's reads the rows of
# its root (the root's own clicks are one primary-key range of `clicks`), instead of every raw
# click of the range (docs/benchmarks.md, "Queries").
LINK_BREAKDOWN_COLUMNS = {"link": "code", "subId": "sub_id"}
_LINK_PAIRS = ", ".join(
    f"('{dimension}', {column})" for dimension, column in LINK_BREAKDOWN_COLUMNS.items()
)
LINKS_BREAKDOWN = ClickView(
    table="clicks_links_daily",
    columns=f"dimension LowCardinality(String), day Date, value String, {_COUNT_COLUMNS}",
    order_by="dimension, day, value",
    partition_by="toYYYYMM(day)",
    select=f"SELECT pair.1 AS dimension, toDate(ts) AS day, pair.2 AS value, {_COUNTS} "
    f"FROM {{source}} ARRAY JOIN [{_LINK_PAIRS}] AS pair "
    "WHERE outcome = 'credited' AND partner_id != '' GROUP BY dimension, day, value",
    index_granularity=VIEW_GRANULE_ROWS,
)
DESCENDANTS_LINKS = ClickView(
    table="clicks_descendants_links_daily",
    columns=f"ancestor_id String, dimension LowCardinality(String), day Date, value String, "
    f"{_COUNT_COLUMNS}",
    order_by="ancestor_id, dimension, day, value",
    partition_by="toYYYYMM(day)",
    select=f"SELECT ancestor_id, pair.1 AS dimension, toDate(ts) AS day, pair.2 AS value, "
    f"{_COUNTS} FROM {{source}} ARRAY JOIN ancestors AS ancestor_id "
    f"ARRAY JOIN [{_LINK_PAIRS}] AS pair WHERE outcome = 'credited' AND partner_id != '' "
    "GROUP BY ancestor_id, dimension, day, value",
    index_granularity=VIEW_GRANULE_ROWS,
)
_LINK_VIEWS = (LINKS_BREAKDOWN, DESCENDANTS_LINKS)
# Everyone's hours without the campaign (schema migration 14): an hour series for no campaign
# merges one visitor state per hour instead of one per campaign (30 days: 720 states against
# 5,760 on the benchmark's data, docs/benchmarks.md). Fed from the hour table, a cascade like
# the day tables: its blocks are already aggregated, a few rows per insert. (The same per
# ancestor cost the clicks' batcher 8% of its events/s for 9 ms of a subtree's hour series.)
_HOURS_WITHOUT_CAMPAIGN = (
    ClickView(
        table="clicks_totals_all_hourly",
        columns=f"hour DateTime('UTC'), outcome LowCardinality(String), {_COUNT_COLUMNS}",
        order_by="hour, outcome",
        partition_by="toYYYYMM(hour)",
        select=f"SELECT hour, outcome, {_MERGED_COUNTS} FROM {{source}} GROUP BY hour, outcome",
        source="clicks_totals_hourly",
        index_granularity=VIEW_GRANULE_ROWS,
    ),
)
# The views the API reads, as they are now (migration 14 and later).
CLICK_VIEWS: tuple[ClickView, ...] = (*_MIGRATION_6_VIEWS, *_LINK_VIEWS, *_HOURS_WITHOUT_CAMPAIGN)


def _rebuilt_in_small_granules(view: ClickView) -> tuple[str, ...]:
    """Copy a view's table into one of small granules and swap the two; rerunnable at any step
    (the old table keeps every row until the swap). Drop the view's `_mv` first."""
    table, copy = f"{DATABASE}.{view.table}", f"{DATABASE}.{view.table}_small_granules"
    return (
        f"DROP TABLE IF EXISTS {copy}",
        replace(view, index_granularity=VIEW_GRANULE_ROWS).target_ddl_as(
            f"{view.table}_small_granules"
        ),
        f"INSERT INTO {copy} SELECT * FROM {table}",
        f"EXCHANGE TABLES {table} AND {copy}",
        f"DROP TABLE {copy}",
    )


def _views_added(views: tuple[ClickView, ...]) -> tuple[str, ...]:
    """New views, each made (again) and filled from its source as it is; rerunnable."""
    return tuple(
        statement for view in views for statement in (
            f"DROP VIEW IF EXISTS {DATABASE}.{view.table}_mv",
            view.target_ddl,
            f"TRUNCATE TABLE {DATABASE}.{view.table}",
            view.view_ddl,
            view.backfill,
        )
    )


def _clicks_ddl(table: str, partition_by: str) -> str:
    return f"""
        CREATE TABLE IF NOT EXISTS {DATABASE}.{table} (
            click_id        UUID,
            ts              DateTime64(3, 'UTC'),
            code            String,
            kind            LowCardinality(String),
            is_human        UInt8,
            outcome         LowCardinality(String),
            partner_id      String,
            ancestors       Array(String),
            campaign        String,
            sub_id          String,
            destination     String,
            ip_hash         String,
            ip_prefix       String,
            user_agent      String,
            referer         String,
            referer_host    LowCardinality(String),
            accept_language String,
            country         LowCardinality(String),
            device          LowCardinality(String),
            os              LowCardinality(String),
            browser         LowCardinality(String),
            bot_family      LowCardinality(String),
            first_click     UInt8,
            visitor_id      String,
            method          LowCardinality(String),
            inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
        )
        ENGINE = ReplacingMergeTree(inserted_at)
        PARTITION BY {partition_by}
        ORDER BY (partner_id, ts, click_id)
        SETTINGS non_replicated_deduplication_window = 1000
        """


def _conversions_ddl(table: str, order_by: str, partition_by: str) -> str:
    return f"""
        CREATE TABLE IF NOT EXISTS {DATABASE}.{table} (
            event_id               String,
            event_type             LowCardinality(String),
            ts                     DateTime64(3, 'UTC'),
            user_id                String,
            ctid_trader_account_id String,
            click_id               String,
            partner_id             String,
            ancestors              Array(String),
            campaign               String,
            source                 LowCardinality(String),
            inserted_at            DateTime64(3, 'UTC') DEFAULT now64(3)
        )
        ENGINE = ReplacingMergeTree(inserted_at)
        PARTITION BY {partition_by}
        ORDER BY ({order_by})
        SETTINGS non_replicated_deduplication_window = 1000
        """


# The batcher's way in (migration 5): it sends each click as the edge wrote it (JSON, ts in ms)
# with the fields it derived appended, and ClickHouse parses it in C++ instead of Python building
# and encoding a row (docs/benchmarks.md, "Pipeline"). This table keeps nothing; its view turns
# each row into a `clicks` row, and the insert goes on into `clicks` and the views on it, carrying
# the batch's deduplication token along.
INGEST_TABLE = "clicks_ingest"
_INGEST_DDL = f"""
    CREATE TABLE IF NOT EXISTS {DATABASE}.{INGEST_TABLE} (
        click_id        UUID,
        ts              Int64,
        code            String,
        kind            LowCardinality(String),
        is_human        UInt8,
        outcome         LowCardinality(String),
        partner_id      String,
        ancestors       Array(String),
        campaign        String,
        sub_id          String,
        destination     String,
        ip_hash         String,
        ip_prefix       String,
        user_agent      String,
        referer         String,
        referer_host    LowCardinality(String),
        accept_language String,
        country         LowCardinality(String),
        device          LowCardinality(String),
        os              LowCardinality(String),
        browser         LowCardinality(String),
        bot_family      LowCardinality(String),
        first_click     UInt8 DEFAULT 1,
        visitor_id      String,
        method          LowCardinality(String)
    )
    ENGINE = Null
"""
_INGEST_VIEW_DDL = f"""
    CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}.{INGEST_TABLE}_mv
    TO {DATABASE}.clicks AS SELECT
        click_id, fromUnixTimestamp64Milli(ts, 'UTC') AS ts, code, kind, is_human, outcome,
        partner_id, ancestors, campaign, sub_id, destination, ip_hash, ip_prefix, user_agent,
        referer, referer_host, accept_language, country, device, os, browser, bot_family,
        first_click, if(visitor_id = '', toString(click_id), visitor_id) AS visitor_id,
        if(method = '', 'GET', method) AS method
    FROM {DATABASE}.{INGEST_TABLE}
"""


# What analytics.closed_clicks keeps: a question's clicks of the days that have ended, summed
# and merged per key and outcome (`entry`: what was read; `attempt`: which computation wrote
# them), and which attempt is right (with the high-water marks of what it read). An entry serves
# the day it was computed on.
CLOSED_CLICKS = "closed_clicks"
CLOSED_CLICKS_ENTRIES = "closed_clicks_entries"
_KEPT_TWO_DAYS = "TTL toDateTime(computed_at) + toIntervalDay(2)"
_CLOSED_CLICKS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.{CLOSED_CLICKS} (entry String, attempt String, "
    "t DateTime('UTC'), key String, outcome LowCardinality(String), n_clicks UInt64, "
    f"n_human UInt64, visitor_state {VISITORS_STATE}, "
    "computed_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    f"ENGINE = MergeTree ORDER BY (entry, attempt, key) {_KEPT_TWO_DAYS} "
    f"SETTINGS index_granularity = {VIEW_GRANULE_ROWS}",
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.{CLOSED_CLICKS_ENTRIES} (entry String, "
    "attempt String, high_water String, computed_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    f"ENGINE = ReplacingMergeTree(computed_at) ORDER BY entry {_KEPT_TWO_DAYS}",
)
# The same for a question's funnel events (analytics.events.queries): per key and event type,
# the signed sums and the users with a live event (a uniqExact state: distinct counts over days
# kept and today read are the union of the two sets).
CLOSED_EVENTS = "closed_events"
CLOSED_EVENTS_ENTRIES = "closed_events_entries"
_CLOSED_EVENTS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.{CLOSED_EVENTS} (entry String, attempt String, "
    "key String, event_type LowCardinality(String), "
    "users AggregateFunction(uniqExactIf, UInt64, UInt8), n Int64, n_ftd Int64, "
    "n_amount Decimal(38, 8), n_ftd_amount Decimal(38, 8), n_lots Decimal(38, 8), "
    "n_revenue Decimal(38, 8), computed_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    f"ENGINE = MergeTree ORDER BY (entry, attempt, key) {_KEPT_TWO_DAYS}",
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.{CLOSED_EVENTS_ENTRIES} (entry String, "
    "attempt String, high_water String, computed_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    f"ENGINE = ReplacingMergeTree(computed_at) ORDER BY entry {_KEPT_TWO_DAYS}",
)
# A link's partner, campaign and sub-ID as its clicks recorded them (they never change), found
# once by a breakdown by link (analytics.links).
LINK_DETAILS = "link_details"
_LINK_DETAILS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.{LINK_DETAILS} (code String, partner_id String, "
    "campaign String, sub_id String, found_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    "ENGINE = ReplacingMergeTree(found_at) ORDER BY code"
)
# Figures computed once and kept (analytics.series_cache, analytics.closed_clicks, the events',
# the links' details): emptied whenever the tables they were read from may have changed without
# a newer part.
STORES = (series_cache.TABLE, CLOSED_CLICKS, CLOSED_CLICKS_ENTRIES, CLOSED_EVENTS,
          CLOSED_EVENTS_ENTRIES, LINK_DETAILS)


def clear_stores(client: CommandClient) -> None:
    for table in STORES:
        client.command(f"TRUNCATE TABLE IF EXISTS {DATABASE}.{table}")


# Column names are part of the contract (users query these tables directly): snake_case,
# documented in the README; add columns in new migrations, never rename.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "clicks, conversions, partners", (
        _clicks_ddl("clicks", partition_by="toYYYYMM(ts)"),
        _conversions_ddl("conversions", order_by="partner_id, event_type, event_id",
                         partition_by="toYYYYMM(ts)"),
        f"""
        CREATE TABLE IF NOT EXISTS {DATABASE}.partners (
            partner_id  String,
            parent_id   String,
            type        LowCardinality(String),
            status      LowCardinality(String),
            name        String,
            ancestors   Array(String),
            level       UInt8,
            updated_at  DateTime64(3, 'UTC')
        )
        ENGINE = ReplacingMergeTree(updated_at)
        ORDER BY partner_id
        """,
    )),
    Migration(2, "materialized views: per partner hourly, per downline hourly, dimensions daily", (
        *(view.target_ddl for view in _MIGRATION_2_VIEWS),
        *(view.view_ddl for view in _MIGRATION_2_VIEWS),
        # Clicks recorded before this migration; run it with the batchers stopped.
        *(view.backfill for view in _MIGRATION_2_VIEWS),
    )),
    # Clicks by day, not month: the partial hours at the ends of a range are read from `clicks`
    # and must not scan (and FINAL) a whole month (docs/benchmarks.md, "Queries"). Run it with
    # the batchers stopped; every step may run again if the migration was interrupted.
    Migration(3, "clicks by day, conversions by event, views the API reads", (
        *(f"DROP VIEW IF EXISTS {DATABASE}.{view.table}_mv" for view in _MIGRATION_2_VIEWS),
        *(f"DROP TABLE IF EXISTS {DATABASE}.{view.table}" for view in _DROPPED_IN_3),
        f"DROP TABLE IF EXISTS {DATABASE}.clicks_by_day",
        _clicks_ddl("clicks_by_day", partition_by="toDate(ts)"),
        f"INSERT INTO {DATABASE}.clicks_by_day SELECT * FROM {DATABASE}.clicks",
        f"EXCHANGE TABLES {DATABASE}.clicks AND {DATABASE}.clicks_by_day",
        f"DROP TABLE {DATABASE}.clicks_by_day",
        # One row per event_id whatever the partner: a registration recorded again for another
        # partner replaces the first (the latest wins in FINAL), in one partition so it can.
        f"DROP TABLE IF EXISTS {DATABASE}.conversions_by_event",
        _conversions_ddl("conversions_by_event", order_by="event_type, event_id",
                         partition_by="tuple()"),
        f"INSERT INTO {DATABASE}.conversions_by_event SELECT * FROM {DATABASE}.conversions",
        f"EXCHANGE TABLES {DATABASE}.conversions AND {DATABASE}.conversions_by_event",
        f"DROP TABLE {DATABASE}.conversions_by_event",
        *(view.target_ddl for view in _NEW_IN_3),
        *(f"TRUNCATE TABLE {DATABASE}.{view.table}" for view in _NEW_IN_3),
        *(view.view_ddl for view in _MIGRATION_3_VIEWS),
        # The day tables fill from the hour tables' inserts (a cascade).
        *(view.backfill for view in _NEW_IN_3 if view.source == "clicks"),
    )),
    Migration(4, "partners.tokens_not_before: revoked partner tokens", (
        f"ALTER TABLE {DATABASE}.partners ADD COLUMN IF NOT EXISTS "
        "tokens_not_before DateTime64(3, 'UTC') DEFAULT 0",
    )),
    Migration(5, "clicks_ingest: clicks from the batcher, parsed by ClickHouse", (
        _INGEST_DDL, _INGEST_VIEW_DDL,
    )),
    # Run it with the batchers stopped (no view writes while the tables are swapped); every
    # step may run again if the migration was interrupted.
    Migration(6, "views in small granules, subtree breakdowns by day", (
        *(f"DROP VIEW IF EXISTS {DATABASE}.{view.table}_mv" for view in _MIGRATION_3_VIEWS),
        *(statement for view in _MIGRATION_3_VIEWS
          for statement in _rebuilt_in_small_granules(view)),
        DESCENDANTS_BREAKDOWN.target_ddl,
        f"TRUNCATE TABLE {DATABASE}.{DESCENDANTS_BREAKDOWN.table}",
        *(view.view_ddl for view in _MIGRATION_6_VIEWS),
        DESCENDANTS_BREAKDOWN.backfill,
    )),
    Migration(7, "funnel events: events, events_credited", MIGRATION_7),
    Migration(8, "events_credited.reversed: reversed events keep their credit", MIGRATION_8_EVENTS),
    Migration(9, "commissions: the ledger and what it is computed from", MIGRATION_9),
    # Run it with the batchers stopped (the backfill reads `clicks` as it is); rerunnable.
    Migration(10, "links and sub-IDs by day: for everyone and for each subtree",
              _views_added(_LINK_VIEWS)),
    # Run it with the batchers stopped (the backfill reads `events_credited` as it is); rerunnable.
    Migration(11, "funnel events by hour, by day and by user", MIGRATION_11_EVENTS),
    # Run it with the batchers stopped (events_credited is copied, then swapped); rerunnable.
    Migration(12, "events_credited.code: funnel figures by link", MIGRATION_12_EVENTS),
    # The batcher fills it from now on; the registrations before are looked up once here.
    Migration(13, "registration_codes: the link code of every registration click",
              MIGRATION_13),
    # Run it with the batchers stopped (the backfill reads the hour tables as they are);
    # rerunnable.
    Migration(14, "everyone clicks by hour without the campaign",
              _views_added(_HOURS_WITHOUT_CAMPAIGN)),
    Migration(15, "series_cache: the closed buckets of the time series", (series_cache.DDL,)),
    Migration(16, "closed_clicks: the clicks of ended days, kept per question", _CLOSED_CLICKS_DDL),
    Migration(17, "closed_events: the funnel events of ended days, kept per question",
              _CLOSED_EVENTS_DDL),
    # Run it with the batchers stopped (registration_codes is rebuilt, then swapped); rerunnable.
    Migration(18, "registration_codes: every registration with its code; link_details",
              (*MIGRATION_18, _LINK_DETAILS_DDL)),
)


def migrate(client: CommandClient) -> list[int]:
    """Apply every migration not applied yet; safe to run twice. Returns the versions applied."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    client.command(
        f"""
        CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations (
            version    UInt32,
            name       String,
            applied_at DateTime64(3, 'UTC')
        ) ENGINE = ReplacingMergeTree(applied_at) ORDER BY version
        """
    )
    applied = set(_applied_versions(client))
    done: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        log.info("applying migration %d: %s", migration.version, migration.name)
        for statement in migration.statements:
            client.command(statement)
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        client.command(  # numbers and the migration's own constant name only
            f"INSERT INTO {DATABASE}.schema_migrations VALUES "
            f"({migration.version}, '{migration.name}', '{now}')"
        )
        done.append(migration.version)
    if done:  # what the views hold may have changed
        clear_stores(client)
    return done


def _applied_versions(client: CommandClient) -> list[int]:
    result = client.command("SELECT groupArray(version) FROM invite.schema_migrations")
    if isinstance(result, list):
        return [int(v) for v in result]
    text = str(result).strip("[] \n")
    return [int(v) for v in text.split(",") if v.strip()]


def rebuild_views(client: CommandClient) -> None:
    """Recompute every view from `clicks` (after a partial failure or a view change).

    Stop the batchers first: a click inserted while this runs may be counted twice.
    """
    clear_stores(client)
    for view in CLICK_VIEWS:
        client.command(f"TRUNCATE TABLE {DATABASE}.{view.table}")
    for view in CLICK_VIEWS:
        if view.source == "clicks":  # the others fill from these (a cascade)
            client.command(view.backfill)
    clear_stores(client)
