"""Funnel events from their stream into `invite.events`: checked again (the stream may hold what
no intake wrote), turned into a JSONCompactEachRow line, inserted once per eventId."""

from __future__ import annotations

import re
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, Final

import orjson
from clickhouse_connect.driver.client import Client

from analytics.insert import InsertOutcome, Table, insert_bisecting
from edge.errors import BadEvent
from edge.streams import EVENT_FIELDS as STREAM_FIELDS
from edge.streams import EVENT_TYPES as TYPES
from edge.streams import decode_payload

# A line is the event's values in the stream's field order (every one a column of `events`).
EVENTS_TABLE: Final = Table("events", columns=tuple((name, "") for name in STREAM_FIELDS))
DECIMAL_FIELDS: Final = ("amount", "original_amount", "lots", "commission", "markup")
TIME_FIELDS: Final = ("ts", "opened_at", "received_at")
_DECIMAL: Final = re.compile(r"[0-9]{1,13}(?:\.[0-9]{1,8})?")
_MS: Final = re.compile(r"[0-9]{1,15}")
MAX_TEXT: Final = 128
_TYPE_SET: Final = frozenset(TYPES)
_VALUES: Final = itemgetter(*STREAM_FIELDS)
_DECIMALS_AT: Final = tuple(STREAM_FIELDS.index(name) for name in DECIMAL_FIELDS)
_TIMES_AT: Final = tuple(STREAM_FIELDS.index(name) for name in TIME_FIELDS)
_TYPE_AT, _ID_AT, _TS_AT = (STREAM_FIELDS.index(name) for name in ("event_type", "event_id", "ts"))
_DECIMALS: Final = itemgetter(*_DECIMALS_AT)
_TIMES: Final = itemgetter(*_TIMES_AT)
# The decimals, then the times, of an event joined by commas (which neither may hold): one match
# each instead of one a field (docs/benchmarks.md, "Funnel events").
_DECIMALS_JOINED: Final = re.compile(",".join([r"(?:[0-9]{1,13}(?:\.[0-9]{1,8})?)?"] * 5))
_TIMES_JOINED: Final = re.compile(",".join([r"[0-9]{0,15}"] * 3))
# A payload exactly as the intake writes it (orjson, the stream's field order, every value
# printable ASCII without escapes), matched as bytes: no dict is built for it (docs/benchmarks.md,
# "Funnel events"). Anything else is decoded and checked field by field.
_TEXT_VALUE: Final = rb'"([\x20\x21\x23-\x5b\x5d-\x7e]{0,128})"'
_VALUE_PATTERNS: Final = {
    **dict.fromkeys(DECIMAL_FIELDS, rb'"((?:[0-9]{1,13}(?:\.[0-9]{1,8})?)?)"'),
    **dict.fromkeys(TIME_FIELDS, rb'"([0-9]{0,15})"'),
}
_INTAKE_FORM: Final = re.compile(rb"\{" + rb",".join(
    b'"' + name.encode() + b'":' + _VALUE_PATTERNS.get(name, _TEXT_VALUE) for name in STREAM_FIELDS
) + rb"\}")
_TYPE_BYTES: Final = frozenset(event_type.encode() for event_type in TYPES)
# Its line: the values in order, text quoted, times (seconds with ms decimals) bare.
_LINE: Final = b"[" + b",".join(
    b"%s" if index in _TIMES_AT else b'"%s"' for index in range(len(STREAM_FIELDS))
) + b"]"


def event_values(event: dict[str, Any]) -> list[Any]:
    """The `invite.events` row of a stream event, in the stream's field order (times in seconds
    with ms decimals, decimals as text, absent ones 0); BadEvent says what is wrong."""
    # The intake's events pass these few checks made in C; anything else takes the checks that
    # name what is wrong, field by field.
    values: list[Any] = []
    if len(event) == len(STREAM_FIELDS):
        try:
            values = list(_VALUES(event))  # KeyError for a field that is not the stream's
            "".join(values)  # TypeError unless every value is a string
        except (KeyError, TypeError):
            values = []
    if not (values and max(map(len, values)) <= MAX_TEXT and values[_TYPE_AT] in _TYPE_SET
            and values[_ID_AT] != ""
            and _DECIMALS_JOINED.fullmatch(",".join(_DECIMALS(values))) is not None
            and _TIMES_JOINED.fullmatch(",".join(_TIMES(values))) is not None
            and values[_TS_AT].strip("0") != ""):
        return list(_VALUES(_checked_row(event)))
    for index in _DECIMALS_AT:
        if not values[index]:
            values[index] = "0"
    for index in _TIMES_AT:
        values[index] = int(values[index] or "0") / 1000
    return values


def _checked_row(event: dict[str, Any]) -> dict[str, Any]:
    if set(event) != set(STREAM_FIELDS):
        missing = sorted(set(STREAM_FIELDS) - set(event))
        raise BadEvent(f"not a funnel event of this edge (fields {missing or sorted(event)[:5]})")
    if not all(isinstance(event[name], str) and len(event[name]) <= MAX_TEXT
               for name in STREAM_FIELDS):
        raise BadEvent("every field of a funnel event is a string of at most 128 characters")
    if event["event_type"] not in TYPES or not event["event_id"]:
        raise BadEvent(f"event_type {event['event_type'][:32]!r} or event_id is not valid")
    row: dict[str, Any] = dict(event)
    for name in DECIMAL_FIELDS:
        value = event[name] or "0"
        if _DECIMAL.fullmatch(value) is None:
            raise BadEvent(f"{name} {value[:32]!r} is not a decimal")
        row[name] = value
    for name in TIME_FIELDS:
        value = event[name] or "0"
        if _MS.fullmatch(value) is None:
            raise BadEvent(f"{name} {value[:32]!r} is not a time in ms")
        row[name] = int(value) / 1000
    if row["ts"] <= 0:
        raise BadEvent("ts is missing")
    return row


def event_line(payload: bytes | str | None) -> tuple[str, int, bytes]:
    """(event_id, ts in ms, the line inserted) of a stream entry's field `e`."""
    found = _INTAKE_FORM.fullmatch(payload) if type(payload) is bytes else None
    if found is not None and found[2] in _TYPE_BYTES and found[1] and found[3].strip(b"0"):
        # The intake's own bytes: its text values go into the line as they are.
        values = list(found.groups())
        for index in _DECIMALS_AT:
            if not values[index]:
                values[index] = b"0"
        for index in _TIMES_AT:
            values[index] = b"%d.%03d" % divmod(int(values[index] or b"0"), 1000)
        return found[1].decode(), int(found[3]), _LINE % tuple(values)
    event = decode_payload(payload)
    values = event_values(event)
    return str(event["event_id"]), int(event["ts"]), orjson.dumps(values)


def insert_events(
    client: Client, event_ids: Sequence[str], timestamps: Sequence[int], lines: Sequence[bytes],
    keys: Sequence[str], *, token_prefix: str,
) -> InsertOutcome:
    """Insert the rows; a retry carries the same token and is dropped by ClickHouse, and
    `events` (a ReplacingMergeTree) keeps one row per event_id should one ever arrive twice."""
    outcome = InsertOutcome()
    insert_bisecting(
        client, EVENTS_TABLE, lines, keys, list(range(len(lines))), token_prefix, outcome
    )
    return outcome
