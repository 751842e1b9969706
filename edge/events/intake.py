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
from typing import Any, Final

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

# KEYS: the stream, then two per event (its bucket, the reversed event's bucket or its own).
# ARGV: the event count, then three per event (its field, its kind, the reversed field or "")
# and the payloads after all of those.
_SCRIPT: Final = """
local n = tonumber(ARGV[1])
local seen, reversed, duplicate, errors = {}, {}, {}, {}
for i = 1, n do
  local field, kind, target = ARGV[2 + (i - 1) * 3], ARGV[3 + (i - 1) * 3], ARGV[4 + (i - 1) * 3]
  local bucket, target_bucket = KEYS[2 * i], KEYS[2 * i + 1]
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
local accepted = 0
for i = 1, n do
  if not duplicate[i] then
    local field, kind = ARGV[2 + (i - 1) * 3], ARGV[3 + (i - 1) * 3]
    redis.call('HSET', KEYS[2 * i], field, kind)
    redis.call('XADD', KEYS[1], '*', '%(field)s', ARGV[1 + 3 * n + i])
    accepted = accepted + 1
  end
end
for target_key, kind in pairs(reversed) do
  local sep = string.find(target_key, '|', 1, true)
  redis.call('HSET', string.sub(target_key, 1, sep - 1), string.sub(target_key, sep + 1), kind)
end
return {accepted, n - accepted}
""".replace("%(field)s", FIELD)


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
        fields: list[Any] = []
        for event in events:
            bucket, field = bucket_and_field(event["event_id"])
            kind = KINDS.get(event["event_type"], "o")
            target_bucket, target_field = (
                bucket_and_field(event["reverses"]) if kind == "r" else (bucket, b"")
            )
            keys += [bucket, target_bucket]
            fields += [field, kind, target_field]
        payloads = [orjson.dumps(event) for event in events]
        answer = await self._script(keys=keys, args=[len(events), *fields, *payloads])
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
