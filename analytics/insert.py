"""Inserting rows exactly once: the deduplication token, the rows ClickHouse refuses found by
halving, and the clicks already in `clicks` left out."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, DataError

from analytics.schema import DATABASE, INGEST_TABLE

# Replays bring old clicks: look click_ids up only around the times the batch holds, split where
# the batch has a gap longer than this, so a replayed hour does not make us read the whole hour.
DEDUP_GAP_MS = 2_000
DEDUP_MAX_WINDOWS = 32
INSERT_SETTINGS = {
    "insert_deduplicate": 1,
    # A retried insert whose first attempt reached `clicks` must not add to the views either.
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    # `clicks` is partitioned by day: a stream that held a long outage's clicks spans many.
    "max_partitions_per_insert_block": 0,
    # A batch holds each key once (the batcher sees to it) and the views' blocks are grouped
    # already: merging rows of one key while inserting only costs time.
    "optimize_on_insert": 0,
    # The views on `clicks` are written side by side, not one after the other (docs/benchmarks.md,
    # "Pipeline").
    "parallel_view_processing": 1,
}
# ClickHouse's codes for "this data cannot go into this column" (parse errors, types, ranges,
# constraints): a row's fault, found by halving. Any other error is ClickHouse's state
# (read-only, too many parts, memory, a timeout) and the whole batch is retried.
ROW_ERROR_CODES = frozenset({
    6, 25, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 321, 376, 469,
})
_ERROR_CODE = re.compile(r"Code: (\d+)")


def refuses_rows(exc: Exception) -> bool:
    """Whether an insert failed for its rows, not for ClickHouse being away or unwell."""
    if isinstance(exc, DataError | TypeError | ValueError | OverflowError):
        return True  # raised while encoding, before anything reached ClickHouse
    if isinstance(exc, DatabaseError):
        found = _ERROR_CODE.search(str(exc))
        return found is not None and int(found.group(1)) in ROW_ERROR_CODES
    return False


@dataclass
class InsertOutcome:
    inserted: int = 0
    present: int = 0  # already in `clicks`: not inserted again
    refused: list[tuple[int, str]] = field(default_factory=list)  # (row index, ClickHouse's reason)


def insert_new_clicks(
    client: Client, click_ids: Sequence[str], timestamps: Sequence[int], lines: Sequence[bytes],
    keys: Sequence[str], *, token_prefix: str,
) -> InsertOutcome:
    """Insert the clicks (distinct click_ids, ts in ms, lines for CLICKS_INGEST) whose click_id
    is not in `clicks`.

    `keys` name the rows durably (stream entry ids): the deduplication token is made of them, so
    the same rows always carry the same token and a retry of an insert that did reach ClickHouse
    is dropped there, in `clicks` and in every view. Blocking: call it from a worker thread, and
    never for overlapping rows from two places at once (the batcher holds a lock in Redis).
    """
    if not click_ids:
        return InsertOutcome()
    present = _present_click_ids(client, timestamps)
    fresh = [index for index, click_id in enumerate(click_ids) if click_id not in present]
    outcome = InsertOutcome(present=len(click_ids) - len(fresh))
    insert_bisecting(client, CLICKS_INGEST, lines, keys, fresh, token_prefix, outcome)
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
    """A table rows are inserted into as text: its name, (column, ClickHouse type) pairs in
    order (none: JSONEachRow names them), the positions of DateTime64 columns the rows hold in
    ms since the epoch, the format and the settings its inserts add."""

    name: str
    columns: Sequence[tuple[str, str]] = ()
    ms_columns: tuple[int, ...] = ()
    fmt: str = "JSONCompactEachRow"
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str] | None:
        return [name for name, _ in self.columns] or None

    def encode(self, row: list[Any]) -> bytes:
        """The row as one line of JSONCompactEachRow, the format the rows are inserted in.

        ClickHouse parses it in C++ (cheaper than Python encoding the native format; see
        docs/benchmarks.md, "Pipeline"); a DateTime64 is written as seconds with the ms as
        decimals, which it reads exactly (a whole number would be taken for seconds).
        """
        if self.ms_columns:
            row = row.copy()
            for index in self.ms_columns:
                row[index] = row[index] / 1000
        return orjson.dumps(row)


# Clicks go in as analytics.enrich.click_line writes them; fields the table does not know are
# the edge's to add (a newer edge than this batcher), not an error.
CLICKS_INGEST = Table(
    INGEST_TABLE, fmt="JSONEachRow", settings={"input_format_skip_unknown_fields": 1}
)


def insert_bisecting(
    client: Client, table: Table, lines: Sequence[bytes], keys: Sequence[str],
    indexes: list[int], token_prefix: str, outcome: InsertOutcome,
) -> None:
    """Insert lines[indexes] (rows encoded by `table.encode`) with a deduplication token made of
    their keys; rows ClickHouse refuses are found by halving and reported in `outcome.refused`."""
    if not indexes:
        return
    digest = hashlib.sha256(",".join([keys[index] for index in indexes]).encode()).hexdigest()
    token = f"{token_prefix}:{keys[indexes[0]]}:{len(indexes)}:{digest[:32]}"
    try:
        client.raw_insert(
            f"{DATABASE}.{table.name}",
            table.column_names,
            b"\n".join([lines[index] for index in indexes]),
            settings={**INSERT_SETTINGS, **table.settings, "insert_deduplication_token": token},
            fmt=table.fmt,
        )
        outcome.inserted += len(indexes)
    except Exception as exc:
        if not refuses_rows(exc):
            raise
        # The rows themselves are refused (not ClickHouse being away): find the culprit by
        # halving, so one bad row cannot hold back the others.
        if len(indexes) == 1:
            outcome.refused.append((indexes[0], f"ClickHouse refused the row: {str(exc)[:300]}"))
            return
        middle = len(indexes) // 2
        insert_bisecting(client, table, lines, keys, indexes[:middle], token_prefix, outcome)
        insert_bisecting(client, table, lines, keys, indexes[middle:], token_prefix, outcome)


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
