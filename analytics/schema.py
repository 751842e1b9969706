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
        client.command(
            f"INSERT INTO {DATABASE}.schema_migrations VALUES "
            f"({migration.version}, '{migration.name}', '{now}')"
        )
        done.append(migration.version)
    return done


def _applied_versions(client: CommandClient) -> list[int]:
    result = client.command(f"SELECT groupArray(version) FROM {DATABASE}.schema_migrations")
    if isinstance(result, list):
        return [int(v) for v in result]
    text = str(result).strip("[] \n")
    return [int(v) for v in text.split(",") if v.strip()]
