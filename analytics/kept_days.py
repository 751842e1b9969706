"""Days of a question that have ended, kept once computed: the mechanism of
analytics.closed_clicks and of the funnel figures' (analytics.events.queries).

A question's rows for [start, start of today) are aggregated once into mergeable rows (sums,
visitor or user states), stored under an `entry` naming exactly what was read (the statement
and its parameters) by an `attempt` (its entry row is written after them: an entry found has all
its rows), and read back in place of those days. An entry is right while no part of the tables
it read that covers its days is newer than when it was computed (block numbers and data
versions, analytics.series_cache), and, for raw `clicks`, while those parts hold as many rows (a
TTL or a merge of copies removes rows without a new number). Nothing computed while a delete or
update of those tables is applied is kept. Every migration, `rebuild_views` and an erasure
empty the stores.

Only ranges starting on a whole hour with at least a whole day ended are kept (the dashboard's;
the API's default window, which moves with every millisecond, is asked in full every time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from analytics import series_cache
from analytics.filters import ClickFilter
from analytics.rollups import DAY, HOUR, floor_to
from analytics.schema import DATABASE

# Part of every entry: bump it when what the rows mean changes.
VERSION: Final = 1
MIN_CLOSED: Final = DAY
# Raw tables whose rows a TTL removes without a newer part: their covering parts' rows count too.
ROWS_COUNTED: Final = frozenset({"clicks"})
_TABLES_READ: Final = re.compile(rf"\b{DATABASE}\.(\w+)")
_ROWS: Final = "#rows"
log = logging.getLogger("invite.analytics")


def closed_end(f: ClickFilter, now: datetime | None = None) -> datetime | None:
    """Where the range's kept days end (the start of today, or the range's end); None when it
    has none to keep."""
    end = min(f.end, floor_to(now or datetime.now(UTC), DAY))
    if f.start != floor_to(f.start, HOUR) or end - f.start < MIN_CLOSED:
        return None
    return end


def keep(client: Client, store: tuple[str, str], sql: str, parameters: dict[str, Any],
         insert: str, start: datetime, end: datetime) -> tuple[str, str] | None:
    """(entry, attempt) of the stored rows of `sql` (the rows of [start, end)), computed and
    stored first if needed: `insert` is `INSERT INTO {rows table} (columns) SELECT ...` with
    `{rows}` for the statement, `{closed_entry:String}` and `{closed_attempt:String}` for the
    ids. `store`: the rows' table and the entries' table. None when it cannot be used."""
    rows_table, entries_table = store
    bound = sorted((name, str(value)) for name, value in parameters.items())
    entry = hashlib.sha256(json.dumps([VERSION, rows_table, sql, bound]).encode()).hexdigest()
    tables = sorted(set(_TABLES_READ.findall(sql)))
    try:
        state = series_cache.read_state(client, tables)
        found = client.query(
            f"SELECT attempt, high_water FROM {DATABASE}.{entries_table} "  # noqa: S608
            "WHERE entry = {entry:String} ORDER BY computed_at DESC LIMIT 1",
            parameters={"entry": entry},
        ).result_rows
        if found and _valid(state, start, end, json.loads(found[0][1])):
            return entry, str(found[0][0])
        if series_cache.mutating(client, tables):
            return None
        attempt = uuid.uuid4().hex
        client.command(insert.replace("{rows}", sql), parameters={
            **parameters, "closed_entry": entry, "closed_attempt": attempt})
        # Written after its rows: an entry found has all of them.
        client.insert(f"{DATABASE}.{entries_table}",
                      [[entry, attempt, json.dumps(_marks(state, start, end))]],
                      column_names=["entry", "attempt", "high_water"])
    except ClickHouseError as exc:  # a server user without the rights: asked in full
        log.warning("%s not stored, asking every day: %s", rows_table, exc)
        return None
    return entry, attempt


def _marks(state: series_cache.State, start: datetime, end: datetime) -> dict[str, int]:
    marks = dict(state.high_water)
    for table in ROWS_COUNTED & state.high_water.keys():
        marks[table + _ROWS] = _rows(state, table, start, end)
    return marks


def _rows(state: series_cache.State, table: str, start: datetime, end: datetime) -> int:
    return sum(part.rows for part in state.parts.get(table, []) if part.covers(start, end))


def _valid(state: series_cache.State, start: datetime, end: datetime,
           marks: dict[str, int]) -> bool:
    if not state.valid(start, end - start, marks):
        return False
    return all(marks.get(table + _ROWS) == _rows(state, table, start, end)
               for table in ROWS_COUNTED & state.high_water.keys())
