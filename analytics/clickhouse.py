"""ClickHouse: opening it from INVITE_CLICKHOUSE_URL, and inserting clicks exactly once."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DataError

from analytics.enrich import CLICK_COLUMNS
from analytics.schema import DATABASE
from edge.errors import ConfigError

__all__ = [
    "CLICKS_TABLE", "Client", "InsertOutcome", "Table", "dedup_windows", "insert_bisecting",
    "insert_new_clicks", "open_clickhouse", "redact_url",
]

# A server that accepts the connection but never answers must not hold a batch (and the
# batcher's insert lock) forever; an insert of 100k rows takes well under this.
SEND_RECEIVE_TIMEOUT_S = 60
CONNECT_TIMEOUT_S = 5


def redact_url(url: str) -> str:
    """The URL as it may appear in a message or a log: the password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def open_clickhouse(url: str) -> Client:
    """A clickhouse-connect client on database `invite`, created if missing.

    `chdb:///abs/path` opens the embedded engine in this process (one process per data dir);
    `http(s)://user:pass@host:8123/` a ClickHouse server. Connection failures propagate as
    clickhouse-connect's OperationalError, whose message carries host and port, not the password.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "chdb":
        client = clickhouse_connect.get_client(dsn=url)
    elif scheme in ("http", "https"):
        # A path in the URL would be taken for a database name; ours is always `invite`.
        client = clickhouse_connect.get_client(
            dsn=urlunsplit(urlsplit(url)._replace(path="", query="", fragment="")),
            connect_timeout=CONNECT_TIMEOUT_S,
            send_receive_timeout=SEND_RECEIVE_TIMEOUT_S,
        )
    else:
        raise ConfigError(
            f"INVITE_CLICKHOUSE_URL={redact_url(url)!r} must start with chdb:// (embedded) "
            "or http:// / https:// (a ClickHouse server)"
        )
    # Read-only users (the analytics API on a server) may not create databases: look first.
    exists = client.command(
        "SELECT count() FROM system.databases WHERE name = %(name)s", parameters={"name": DATABASE}
    )
    if str(exists).strip() == "0":
        client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    client.database = DATABASE
    return client


# Replays bring old clicks: look click_ids up only around the times the batch holds, split where
# the batch has a gap longer than this, so a replayed hour does not make us read the whole hour.
DEDUP_GAP_MS = 2_000
DEDUP_MAX_WINDOWS = 32
_INSERT_SETTINGS = {
    "insert_deduplicate": 1,
    # A retried insert whose first attempt reached `clicks` must not add to the views either.
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    # `clicks` is partitioned by day: a stream that held a long outage's clicks spans many.
    "max_partitions_per_insert_block": 0,
}


@dataclass
class InsertOutcome:
    inserted: int = 0
    present: int = 0  # already in `clicks`: not inserted again
    refused: list[tuple[int, str]] = field(default_factory=list)  # (row index, ClickHouse's reason)


def insert_new_clicks(
    client: Client, rows: Sequence[list[Any]], keys: Sequence[str], *, token_prefix: str
) -> InsertOutcome:
    """Insert the rows (CLICK_COLUMNS order, distinct click_ids) whose click_id is not in `clicks`.

    `keys` name the rows durably (stream entry ids): the deduplication token is made of them, so
    the same rows always carry the same token and a retry of an insert that did reach ClickHouse
    is dropped there, in `clicks` and in every view. Blocking: call it from a worker thread, and
    never for overlapping rows from two places at once (the batcher holds a lock in Redis).
    """
    if not rows:
        return InsertOutcome()
    present = _present_click_ids(client, [int(row[1]) for row in rows])
    fresh = [index for index, row in enumerate(rows) if row[0] not in present]
    outcome = InsertOutcome(present=len(rows) - len(fresh))
    insert_bisecting(client, CLICKS_TABLE, rows, keys, fresh, token_prefix, outcome)
    return outcome


def _present_click_ids(client: Client, timestamps: Sequence[int]) -> set[str]:
    where = " OR ".join(
        f"ts BETWEEN fromUnixTimestamp64Milli({low}, 'UTC') "
        f"AND fromUnixTimestamp64Milli({high}, 'UTC')"
        for low, high in dedup_windows(timestamps)
    )
    result = client.query(  # built from integers only
        f"SELECT toString(click_id) FROM {DATABASE}.clicks WHERE {where}"  # noqa: S608
    )
    return set(result.result_columns[0]) if result.result_columns else set()


@dataclass(frozen=True)
class Table:
    """A table rows are inserted into: its name and (column, ClickHouse type) pairs in order."""

    name: str
    columns: Sequence[tuple[str, str]]


CLICKS_TABLE = Table("clicks", CLICK_COLUMNS)


def insert_bisecting(
    client: Client, table: Table, rows: Sequence[list[Any]], keys: Sequence[str],
    indexes: list[int], token_prefix: str, outcome: InsertOutcome,
) -> None:
    """Insert rows[indexes] with a deduplication token made of their keys; rows ClickHouse
    refuses are found by halving and reported in `outcome.refused`."""
    if not indexes:
        return
    digest = hashlib.sha256()
    for index in indexes:
        digest.update(keys[index].encode())
        digest.update(b",")
    token = f"{token_prefix}:{keys[indexes[0]]}:{len(indexes)}:{digest.hexdigest()[:32]}"
    try:
        client.insert(
            table.name,
            [list(column) for column in zip(*(rows[i] for i in indexes), strict=True)],
            database=DATABASE,
            column_names=[name for name, _ in table.columns],
            column_type_names=[type_name for _, type_name in table.columns],
            column_oriented=True,
            settings={**_INSERT_SETTINGS, "insert_deduplication_token": token},
        )
        outcome.inserted += len(indexes)
    except (DataError, TypeError, ValueError, OverflowError) as exc:
        # The rows themselves are refused (not ClickHouse being away): find the culprit by
        # halving, so one bad row cannot hold back the others.
        if len(indexes) == 1:
            outcome.refused.append((indexes[0], f"ClickHouse refused the row: {str(exc)[:300]}"))
            return
        middle = len(indexes) // 2
        insert_bisecting(client, table, rows, keys, indexes[:middle], token_prefix, outcome)
        insert_bisecting(client, table, rows, keys, indexes[middle:], token_prefix, outcome)


def dedup_windows(timestamps: Sequence[int]) -> list[tuple[int, int]]:
    """Few [low, high] ms ranges covering every timestamp, split at the widest gaps."""
    ordered = sorted(set(timestamps))
    gap = DEDUP_GAP_MS
    while True:
        windows: list[tuple[int, int]] = []
        low = high = ordered[0]
        for ts in ordered[1:]:
            if ts - high > gap:
                windows.append((low, high))
                low = ts
            high = ts
        windows.append((low, high))
        if len(windows) <= DEDUP_MAX_WINDOWS:
            return windows
        gap *= 4
