"""The ClickHouse schema of database `invite`, as numbered migrations applied once each."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

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
    select: str  # reads {source}: `invite.clicks` in the view, `invite.clicks FINAL` to rebuild

    @property
    def target_ddl(self) -> str:
        # The batcher's inserts carry a deduplication token and ask the views to deduplicate
        # too, so a retried insert cannot count twice here (needs the window on the target).
        return (
            f"CREATE TABLE IF NOT EXISTS {DATABASE}.{self.table} ({self.columns}) "
            f"ENGINE = AggregatingMergeTree PARTITION BY {self.partition_by} "
            f"ORDER BY ({self.order_by}) SETTINGS non_replicated_deduplication_window = 1000"
        )

    @property
    def view_ddl(self) -> str:
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}.{self.table}_mv "
            f"TO {DATABASE}.{self.table} AS {self.select.format(source=f'{DATABASE}.clicks')}"
        )

    @property
    def backfill(self) -> str:
        source = f"{DATABASE}.clicks FINAL"
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
# only its own rows. `referrer` is the referer's host.
BREAKDOWN_DIMENSIONS = ("country", "device", "os", "browser", "referrer")

CLICK_VIEWS: tuple[ClickView, ...] = (
    ClickView(
        table="clicks_hourly",
        columns=f"partner_id String, {_HOURLY_COLUMNS} {_AGGREGATES}",
        order_by=f"partner_id, {_HOURLY_KEYS}",
        partition_by="toYYYYMM(hour)",
        select=f"SELECT partner_id, {_HOURLY_SELECT} FROM {{source}} "  # noqa: S608
        f"GROUP BY partner_id, {_HOURLY_KEYS}",
    ),
    # A master IB's roll-up is one key range here: every click counts once for its own partner
    # and once for each ancestor of the snapshot it carries (re-parenting never rewrites it).
    ClickView(
        table="clicks_downline_hourly",
        columns=f"ancestor_id String, {_HOURLY_COLUMNS} {_AGGREGATES}",
        order_by=f"ancestor_id, {_HOURLY_KEYS}",
        partition_by="toYYYYMM(hour)",
        select=f"SELECT ancestor_id, {_HOURLY_SELECT} FROM {{source}} "  # noqa: S608
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


# Column names are part of the contract (users query these tables directly): snake_case,
# documented in the README; add columns in new migrations, never rename.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "clicks, conversions, partners", (
        f"""
        CREATE TABLE IF NOT EXISTS {DATABASE}.clicks (
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
        PARTITION BY toYYYYMM(ts)
        ORDER BY (partner_id, ts, click_id)
        SETTINGS non_replicated_deduplication_window = 1000
        """,
        f"""
        CREATE TABLE IF NOT EXISTS {DATABASE}.conversions (
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
        PARTITION BY toYYYYMM(ts)
        ORDER BY (partner_id, event_type, event_id)
        SETTINGS non_replicated_deduplication_window = 1000
        """,
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
        *(view.target_ddl for view in CLICK_VIEWS),
        *(view.view_ddl for view in CLICK_VIEWS),
        # Clicks recorded before this migration; run it with the batchers stopped.
        *(view.backfill for view in CLICK_VIEWS),
    )),
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
            f"INSERT INTO {DATABASE}.schema_migrations VALUES "  # noqa: S608
            f"({migration.version}, '{migration.name}', '{now}')"
        )
        done.append(migration.version)
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
    for view in CLICK_VIEWS:
        client.command(f"TRUNCATE TABLE {DATABASE}.{view.table}")
        client.command(view.backfill)
