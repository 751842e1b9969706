"""Accepted events into the stream, each eventId once however old, in one Redis script per batch.

Every eventId ever accepted is remembered in a compact hash bucket (an 8-byte digest field in one
of 2^18 buckets, its value the event's kind), so a repeat is a no-op counted as a duplicate, and a
reversal is checked against what it reverses: a deposit or a trade, not reversed yet. The script
checks the whole batch first and writes only if every event passes: all or nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import orjson
from redis.asyncio import Redis

from edge.errors import InvalidEvents
from edge.streams import EVENT_STREAM, FIELD

BUCKET_PREFIX: Final = "invite:{events}:seen:"
BUCKET_BITS: Final = 18
# The kind remembered per eventId: what a reversal may reverse, and whether it was.
KINDS: Final = {"deposit": "d", "trade": "t", "reversal": "r"}  # others: "o"
REASONS: Final = {
    "unknown": "reverses an eventId that was never accepted (send the deposit or trade first)",
    "reversed": "reverses an event that is already reversed",
    "kind": "reverses an event that is neither a deposit nor a trade",
}

FIELD_BYTES: Final = 8  # the digest's bytes after the bucket's
# A record per event: its kind (1 byte), its bucket's KEYS index (2 bytes) and its field, then
# the same two of the event it reverses (its own again when it is no reversal).
RECORD_BYTES: Final = 1 + 2 * (2 + FIELD_BYTES)

# KEYS: the stream, then each bucket the batch touches, once. ARGV: the event count, the records
# one after the other, the payloads each followed by a newline (orjson's JSON holds none). Three
# arguments a batch rather than six an event: redis-py spends about a microsecond encoding each
# argument (docs/benchmarks.md, "Funnel events").
_SCRIPT: Final = """
local n = tonumber(ARGV[1])
local records, payloads = ARGV[2], ARGV[3]
local seen, reversed, duplicate, errors = {}, {}, {}, {}
local buckets, fields, kinds = {}, {}, {}
for i = 1, n do
  local at = (i - 1) * RECORD_BYTES
  local kind = string.sub(records, at + 1, at + 1)
  local b1, b2 = string.byte(records, at + 2, at + 3)
  local bucket = KEYS[b1 * 256 + b2]
  local field = string.sub(records, at + 4, at + 3 + FIELD_BYTES)
  local t1, t2 = string.byte(records, at + 4 + FIELD_BYTES, at + 5 + FIELD_BYTES)
  local target_bucket = KEYS[t1 * 256 + t2]
  local target = string.sub(records, at + 6 + FIELD_BYTES, at + RECORD_BYTES)
  buckets[i], fields[i], kinds[i] = bucket, field, kind
  local key = bucket .. '|' .. field
  if seen[key] or redis.call('HEXISTS', bucket, field) == 1 then
    duplicate[i] = true
  else
    if kind == 'r' then
      local target_key = target_bucket .. '|' .. target
      local target_kind = seen[target_key] or redis.call('HGET', target_bucket, target)
      if not target_kind then
        errors[#errors + 1] = (i - 1) .. ':unknown'
      elseif reversed[target_key] or target_kind == 'D' or target_kind == 'T' then
        errors[#errors + 1] = (i - 1) .. ':reversed'
      elseif target_kind ~= 'd' and target_kind ~= 't' then
        errors[#errors + 1] = (i - 1) .. ':kind'
      else
        reversed[target_key] = string.upper(target_kind)
      end
    end
    seen[key] = kind
  end
end
if #errors > 0 then return {-1, errors} end
local accepted, from = 0, 1
for i = 1, n do
  local newline = string.find(payloads, '\\n', from, true)
  if not duplicate[i] then
    redis.call('HSET', buckets[i], fields[i], kinds[i])
    redis.call('XADD', KEYS[1], '*', 'STREAM_FIELD', string.sub(payloads, from, newline - 1))
    accepted = accepted + 1
  end
  from = newline + 1
end
for target_key, kind in pairs(reversed) do
  local sep = string.find(target_key, '|', 1, true)
  redis.call('HSET', string.sub(target_key, 1, sep - 1), string.sub(target_key, sep + 1), kind)
end
return {accepted, n - accepted}
""".replace("RECORD_BYTES", str(RECORD_BYTES)).replace("FIELD_BYTES", str(FIELD_BYTES)).replace(
    "STREAM_FIELD", FIELD)


def bucket_and_field(event_id: str) -> tuple[str, bytes]:
    digest = hashlib.blake2b(event_id.encode(), digest_size=11).digest()
    bucket = int.from_bytes(digest[:3], "big") >> (24 - BUCKET_BITS)
    return f"{BUCKET_PREFIX}{bucket:05x}", digest[3:]


@dataclass(frozen=True, slots=True)
class IntakeResult:
    accepted: int
    duplicates: int

    def to_json(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates}


class EventIntake:
    def __init__(self, redis: Redis, stream: str = EVENT_STREAM) -> None:
        self._stream = stream
        self._script = redis.register_script(_SCRIPT)

    async def submit(self, events: Sequence[dict[str, str]], first_index: int = 0) -> IntakeResult:
        """Append checked events (model.check_events) to the stream; all or none."""
        if not events:
            return IntakeResult(0, 0)
        keys: list[str] = [self._stream]
        slots: dict[str, bytes] = {}  # bucket → its KEYS index, two bytes

        def slot(bucket: str) -> bytes:
            found = slots.get(bucket)
            if found is None:
                keys.append(bucket)
                found = slots[bucket] = len(keys).to_bytes(2, "big")
            return found

        records = bytearray()
        for event in events:
            bucket, field = bucket_and_field(event["event_id"])
            kind = KINDS.get(event["event_type"], "o")
            own = slot(bucket) + field
            if kind == "r":
                target_bucket, target_field = bucket_and_field(event["reverses"])
                records += kind.encode() + own + slot(target_bucket) + target_field
            else:
                records += kind.encode() + own + own
        payloads = b"\n".join([orjson.dumps(event) for event in events]) + b"\n"
        answer = await self._script(keys=keys, args=[len(events), bytes(records), payloads])
        if int(answer[0]) == -1:
            details = []
            for entry in answer[1]:
                index, _, reason = (entry.decode() if isinstance(entry, bytes) else entry
                                    ).partition(":")
                details.append({"index": int(index) + first_index, "field": "reverses",
                                "message": REASONS[reason]})
            raise InvalidEvents(
                f"{len(details)} reversal(s) refused, no event stored: "
                f"{details[0]['message']} (event {details[0]['index']})", details,
            )
        return IntakeResult(int(answer[0]), int(answer[1]))
