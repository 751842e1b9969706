"""The Redis streams between the edge and the batcher: names, entry format, reading by time.

Every entry holds one JSON object in its field `e`: a click (`invite:clicks`, written by the edge's
group commit) or a conversion (`invite:conversions`, written by the SSO hook). This module is the
one place that writes and reads that format; the batcher moves the entries into ClickHouse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from edge.clock import now_ms
from edge.errors import BadEvent
from edge.redis_client import as_text

CLICK_STREAM: Final = "invite:clicks"
CLICK_DEAD_LETTERS: Final = "invite:clicks:dead"
# Attributed registrations (and later funnel events); their fields are a contract with analytics.
CONVERSION_STREAM: Final = "invite:conversions"
CONVERSION_DEAD_LETTERS: Final = "invite:conversions:dead"
# The broker's funnel events (KYC, deposits, trades…), as accepted by POST /api/events. Their
# dedup buckets share the hash tag, so one script checks and appends on one Redis Cluster slot.
EVENT_STREAM: Final = "invite:{events}"
EVENT_DEAD_LETTERS: Final = "invite:{events}:dead"
# Partner notifications the analytics side finds (a referral's first deposit), for the edge's
# outbox to send.
NOTIFICATION_STREAM: Final = "invite:notifications"

EVENT_TYPES: Final = (
    "account_opened", "kyc_approved", "deposit", "withdrawal", "trade", "reversal",
)
# A funnel event in its stream: every key always there, all text ("" where the type has no such
# field): ids and decimals as written, times in ms since the epoch.
EVENT_FIELDS: Final = (
    "event_id", "event_type", "ts", "user_id", "ctid_trader_account_id", "amount",
    "original_amount", "original_currency", "symbol", "lots", "commission", "markup",
    "position_id", "opened_at", "reverses", "source", "received_at",
)

FIELD: Final = "e"
_FIELD_BYTES: Final = FIELD.encode()
# Appends ARGV (events, already JSON) to the stream KEYS[1] in one call: a batch is in the stream
# whole or not at all, and one script call is cheaper to encode than a pipeline of XADDs.
APPEND_SCRIPT: Final = f"""
for i = 1, #ARGV do
  redis.call('XADD', KEYS[1], '*', '{FIELD}', ARGV[i])
end
return #ARGV
"""
_LAST_SEQUENCE: Final = 18_446_744_073_709_551_615  # the largest sequence part of an entry id


def encode_event(event: Mapping[str, Any]) -> bytes:
    return orjson.dumps(event)


async def append_event(redis: Redis, stream: str, event: Mapping[str, Any]) -> str:
    """XADD one event; returns its entry id."""
    entry_id = await redis.xadd(stream, {FIELD: encode_event(event)})
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def entry_payload(fields: Any) -> bytes | str | None:
    """Field `e` of an entry, whether its fields come as Redis sends them (a flat list of names
    and values) or parsed into a dict (bytes or text names); None when it has none."""
    if fields is None:
        return None
    if isinstance(fields, list):
        for index in range(0, len(fields) - 1, 2):
            if fields[index] in (_FIELD_BYTES, FIELD):
                value: bytes | str = fields[index + 1]
                return value
        return None
    found: bytes | str | None = fields.get(_FIELD_BYTES, fields.get(FIELD))
    return found


def decode_payload(raw: bytes | str | None) -> dict[str, Any]:
    """The JSON object of an entry's field `e` (None: the entry has none); BadEvent says why not."""
    if raw is None:
        raise BadEvent(f"the entry has no field {FIELD!r}")
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"field {FIELD!r} is not JSON ({exc})") from None
    if not isinstance(event, dict):
        raise BadEvent(f"field {FIELD!r} is a JSON {type(event).__name__}, not an object")
    return event


def decode_event(fields: Any) -> dict[str, Any]:
    """The event of an entry's fields; BadEvent says why there is none."""
    return decode_payload(entry_payload(fields))


def unparsed_entries(reply: Any) -> list[tuple[Any, Any]]:
    """The (id, fields) entries of an unparsed XREADGROUP reply for one stream: a map of streams to
    entries in RESP3, a list of (stream, entries) pairs in RESP2."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [entry for entries in reply.values() for entry in entries]
    return [entry for _, entries in reply for entry in entries]


def id_key(entry_id: str) -> tuple[int, int]:
    """An entry id as (ms, sequence), for ordering."""
    ms, _, sequence = entry_id.partition("-")
    return int(ms), int(sequence or 0)


def next_id(entry_id: str) -> str:
    ms, sequence = id_key(entry_id)
    return f"{ms}-{sequence + 1}"


async def backlog(redis: Redis, stream: str, group: str) -> tuple[int, int]:
    """(entries, age in ms of the oldest) of what the consumer group has not acknowledged yet:
    its pending entries and those not delivered to it. (0, 0) when it is all caught up, or when
    the stream or the group does not exist yet."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return 0, 0
    info = next((g for g in groups if as_text(g["name"]) == group), None)
    if info is None:
        return 0, 0
    oldest: str | None = None
    if int(info["pending"]):
        oldest = as_text((await redis.xpending(stream, group))["min"])
    unread = info.get("lag")
    if unread is None or int(unread):
        after = "(" + as_text(info["last-delivered-id"])
        first = await redis.xrange(stream, after, "+", count=1)
        if first:
            first_id = as_text(first[0][0])
            if oldest is None or id_key(first_id) < id_key(oldest):
                oldest = first_id
            if unread is None:
                unread = await redis.xlen(stream)
    entries = int(info["pending"]) + int(unread or 0)
    if oldest is None:
        return entries, 0
    return entries, max(0, now_ms() - id_key(oldest)[0])


async def read_between(
    redis: Redis, stream: str, low_ms: int, high_ms: int, *, page: int = 1000,
    limit: int | None = None, containing: str | None = None,
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(entry id, event) of the entries written from low_ms to high_ms, oldest first.

    Entry ids start with the millisecond Redis wrote them, so this is an XRANGE. Entries that are
    not events are skipped; at most `limit` entries are looked at. `containing` skips, before
    decoding, the entries whose text does not hold that string (a cheap first sieve: callers
    still compare the decoded field).
    """
    start = f"{max(low_ms, 0)}-0"
    end = f"{high_ms}-{_LAST_SEQUENCE}"
    needle = containing.encode() if containing is not None else None
    scanned = 0
    while limit is None or scanned < limit:
        count = page if limit is None else min(page, limit - scanned)
        entries: list[tuple[Any, Any]] = await redis.xrange(stream, start, end, count=count) or []
        for entry_id, fields in entries:
            payload = entry_payload(fields)
            if needle is not None and payload is not None:
                raw = payload if isinstance(payload, bytes) else payload.encode()
                if needle not in raw:
                    continue
            try:
                event = decode_payload(payload)
            except BadEvent:
                continue
            yield as_text(entry_id), event
        if len(entries) < count:
            return
        scanned += len(entries)
        start = "(" + as_text(entries[-1][0])
