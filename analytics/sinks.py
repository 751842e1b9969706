"""Which stream goes to which table: how an entry is checked and turned into a line, and how the
lines are inserted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from analytics.conversions import conversion_line, insert_conversions
from analytics.enrich import click_line
from analytics.events.sink import event_line, insert_events
from analytics.insert import InsertOutcome, insert_new_clicks
from edge.errors import BadEvent
from edge.streams import (
    CLICK_DEAD_LETTERS,
    CLICK_STREAM,
    CONVERSION_DEAD_LETTERS,
    CONVERSION_STREAM,
    EVENT_DEAD_LETTERS,
    EVENT_STREAM,
)


@dataclass(frozen=True)
class Sink:
    """One stream's way into ClickHouse.

    `prepare` checks an entry's field `e` (BadEvent says why not) and returns the event's key, its
    time in ms and the line to insert; `insert` (blocking) writes the lines whose key is not in the
    table yet, with a deduplication token made of the entry ids. One batcher inserts at a time
    under `insert_lock_key`, so "which keys are new" and the insert never interleave.
    """

    name: str
    prepare: Callable[[bytes | str | None], tuple[str, int, bytes]]
    insert: Callable[..., InsertOutcome]
    stream: str
    dead_letter_stream: str
    insert_lock_key: str
    max_batch_rows: int | None = None  # None: the batcher's INVITE_BATCHER_BATCH_ROWS
    metrics_prefix: str = "invite_batcher"


# Clicks from the edge: `clicks_ingest`, whose view writes `clicks` and feeds the views.
CLICKS = Sink(
    "clicks", click_line, insert_new_clicks, CLICK_STREAM, CLICK_DEAD_LETTERS,
    "invite:clicks:insert-lock",
)
# Registrations from the SSO hook: few, so small batches suffice.
CONVERSIONS = Sink(
    "conversions", conversion_line, insert_conversions, CONVERSION_STREAM,
    CONVERSION_DEAD_LETTERS, "invite:conversions:insert-lock", max_batch_rows=5_000,
    metrics_prefix="invite_conversions_batcher",
)
# The broker's funnel events (edge/events): batches like the clicks'.
EVENTS = Sink(
    "events", event_line, insert_events, EVENT_STREAM, EVENT_DEAD_LETTERS,
    "invite:events:insert-lock", metrics_prefix="invite_events_batcher",
)
SINKS = (CLICKS, CONVERSIONS, EVENTS)


@dataclass(slots=True)
class Entry:
    """One stream entry in a batch, and what its sink made of it."""

    entry_id: str
    exists: bool  # False: the entry was trimmed while pending
    payload: bytes | str | None  # its field `e`; None when it has none
    key: str = ""  # click_id or event_id, once checked
    ts: int = 0  # the event's time in ms
    line: bytes = b""  # what is inserted
    reason: str = ""  # why it is not an event of the stream's kind


@dataclass(slots=True)
class Sorted:
    fresh: list[Entry]  # valid events, each key (click_id, event_id) once
    repeated: list[Entry]  # a key already earlier in the batch, or trimmed while pending
    bad: list[Entry]  # not valid events
    size: int


def sort_entries(batch: list[Entry], sink: Sink) -> Sorted:
    """Check, enrich and encode every entry of a batch (CPU only: run in a thread)."""
    fresh: dict[str, Entry] = {}
    repeated: list[Entry] = []
    bad: list[Entry] = []
    prepare = sink.prepare
    for entry in batch:
        if not entry.exists:
            repeated.append(entry)  # nothing left to insert, only to acknowledge
            continue
        try:
            entry.key, entry.ts, entry.line = prepare(entry.payload)
        except BadEvent as exc:
            entry.reason = str(exc)
            bad.append(entry)
            continue
        if entry.key in fresh:
            repeated.append(entry)
        else:
            fresh[entry.key] = entry
    return Sorted(list(fresh.values()), repeated, bad, len(batch))
