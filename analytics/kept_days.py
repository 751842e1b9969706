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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from weakref import WeakKeyDictionary

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from analytics import series_cache
from analytics.clickhouse import embedded
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
        # The entries table's parts too: whether an entry seen before is still there.
        state = series_cache.read_state(client, [*tables, entries_table])
        state.high_water.pop(entries_table)
        held = state.parts.pop(entries_table, [])
        seen = _seen(client).get(entry)
        if seen is not None and seen.there(held) and _valid(state, start, end, seen.marks):
            return entry, seen.attempt
        found = _entry_row(client, entries_table, entry)
        if found is not None and _valid(state, start, end, found.marks):
            return entry, found.attempt
        if series_cache.mutating(client, tables):
            return None
        attempt = uuid.uuid4().hex
        client.command(insert.replace("{rows}", sql), parameters={
            **parameters, "closed_entry": entry, "closed_attempt": attempt})
        # Written after its rows: an entry found has all of them.
        client.insert(f"{DATABASE}.{entries_table}",
                      [[entry, attempt, json.dumps(_marks(state, start, end))]],
                      column_names=["entry", "attempt", "high_water"])
        if embedded(client):  # seen: taken again without asking
            _entry_row(client, entries_table, entry, attempt)
    except ClickHouseError as exc:  # a server user without the rights: asked in full
        log.warning("%s not stored, asking every day: %s", rows_table, exc)
        return None
    return entry, attempt


@dataclass(frozen=True)
class _Seen:
    """An entry's row: its attempt and marks, and the blocks of the part it was in (seen by this
    process). The rows stay while a part holding those
    blocks is there (emptying the store drops them: later parts have later blocks) and the TTL
    is far (SEEN_FOR)."""

    attempt: str
    marks: dict[str, int]
    until: datetime
    blocks: tuple[int, int]

    def there(self, parts: list[series_cache.Part]) -> bool:
        return datetime.now(UTC) < self.until and any(part.holds(self.blocks) for part in parts)


# Entries seen are taken again without asking for a day after they were computed (the stores
# keep 2 days), per client of the embedded engine. (A server restarted with an emptied store may
# number its parts from 1 again, so a part could seem to hold the blocks of one gone: a server's
# entries are always asked for. The embedded engine lives as long as its clients.)
SEEN_FOR: Final = timedelta(days=1)
SEEN_MAX: Final = 10_000
_SEEN: WeakKeyDictionary[Client, dict[str, _Seen]] = WeakKeyDictionary()
_PART_NAME: Final = re.compile(r"^all_(\d+)_(\d+)_\d+(?:_\d+)?$")


def _seen(client: Client) -> dict[str, _Seen]:
    return _SEEN.get(client, {})


def _entry_row(client: Client, entries_table: str, entry: str,
               attempt: str | None = None) -> _Seen | None:
    """The entry's latest row (or its `attempt`'s), remembered when the engine is embedded."""
    found = client.query(
        f"SELECT attempt, high_water, computed_at, _part "  # noqa: S608
        f"FROM {DATABASE}.{entries_table} WHERE entry = {{entry:String}}"
        + ("" if attempt is None else " AND attempt = {attempt:String}")
        + " ORDER BY computed_at DESC LIMIT 1",
        parameters={"entry": entry, "attempt": attempt or ""},
    ).result_rows
    if not found:
        return None
    attempt, marks, computed_at, part = found[0]
    computed = computed_at if computed_at.tzinfo else computed_at.replace(tzinfo=UTC)
    named = _PART_NAME.match(str(part))  # the entries tables have one partition, `all`
    row = _Seen(str(attempt), json.loads(marks), computed + SEEN_FOR,
                (int(named.group(1)), int(named.group(2))) if named else (-1, -1))
    if named is not None and embedded(client):
        seen = _SEEN.setdefault(client, {})
        if len(seen) >= SEEN_MAX:
            seen.clear()
        seen[entry] = row
    return row


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
