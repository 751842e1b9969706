"""Outbox jobs in Redis: the stream, each key's idempotency state, leases, dead letters.

A job is one entry of `invite:{outbox}:stream` (fields `kind`, `key`, `job`); its key's state
(`queued`, `done`, `dead`, attempts, whether it was accepted) is a hash kept 90 days, so the same
key is enqueued once. A lease (a key with an owner and an expiry) says who is sending it now.
Entries leave the stream when done or dead; dead ones are copied to `invite:{outbox}:dead`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from edge.clock import now_ms
from edge.errors import InviteError, UpstreamError

PREFIX = "invite:{outbox}:"  # one hash tag: the scripts' keys share a Redis Cluster slot
STREAM = PREFIX + "stream"
DEAD_LETTERS = PREFIX + "dead"
GROUP = "senders"
IDEMPOTENCY_TTL_S = 90 * 86_400
DEAD_LETTERS_MAX = 10_000
PAGE = 100
DONE, QUEUED, DEAD = "done", "queued", "dead"

# KEYS: job, stream, lease. ARGV: kind, key, job, now, ttl, lease ms, lease owner.
_ENQUEUE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state then
  local entry = redis.call('HGET', KEYS[1], 'entry') or ''
  return {0, state, entry, redis.call('HGET', KEYS[1], 'error') or ''}
end
local id = redis.call('XADD', KEYS[2], '*', 'kind', ARGV[1], 'key', ARGV[2], 'job', ARGV[3])
redis.call('HSET', KEYS[1], 'state', 'queued', 'entry', id, 'created_at', ARGV[4], 'attempts', 0)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[3], ARGV[7], 'PX', ARGV[6])
return {1, 'queued', id, ''}
"""
# KEYS: job, stream, lease, dead letters. ARGV: state, entry, owner, now, group, dead letter.
_FINISH = """
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_at', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[7])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'error', ARGV[6])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', 'e', ARGV[6])
end
redis.call('XACK', KEYS[2], ARGV[5], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
if redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def job_key(key: str) -> str:
    return f"{PREFIX}job:{key}"


def lease_key(key: str) -> str:
    return f"{PREFIX}lease:{key}"


@dataclass(frozen=True, slots=True)
class Job:
    kind: str
    key: str  # the idempotency key: the same key is done once
    payload: dict[str, Any]

    def fields(self) -> dict[str, str]:
        return {"kind": self.kind, "key": self.key, "job": orjson.dumps(self.payload).decode()}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Job:
        try:
            payload = orjson.loads(fields["job"])
            kind, key = fields["kind"], fields["key"]
        except (KeyError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"not an outbox job ({type(exc).__name__})") from None
        if not isinstance(payload, dict):
            raise ValueError("the job is not a JSON object")
        return cls(kind, key, payload)


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str  # done | queued | dead
    duplicate: bool = False
    error: dict[str, Any] | None = None


def dead_letter(job: Job, entry_id: str, exc: BaseException, attempts: int) -> dict[str, Any]:
    return {
        "entry": entry_id, "kind": job.kind, "key": job.key, "job": job.payload,
        "attempts": attempts, "ts": now_ms(), "error": describe_error(exc),
    }


def describe_error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, UpstreamError):
        return {
            "code": exc.code, "message": exc.message, "errorCode": exc.error_code,
            "description": exc.description, "httpStatus": exc.http_status,
        }
    if isinstance(exc, InviteError):
        return {"code": exc.code, "message": exc.message}
    return {"code": "internal_error", "message": type(exc).__name__}


Entry = tuple[str, dict[str, str]]


class JobStore:
    """The Redis side of the outbox; every multi-key write is one Lua call on one slot."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._enqueue = redis.register_script(_ENQUEUE)
        self._finish = redis.register_script(_FINISH)
        self._release = redis.register_script(_RELEASE)

    async def enqueue(
        self, job: Job, lease_owner: str, lease_ms: int
    ) -> tuple[bool, str, str, dict[str, Any] | None]:
        """(created, state, entry id, error): a known key gives its state and writes nothing."""
        created, state, entry_id, error = await self._enqueue(
            keys=[job_key(job.key), STREAM, lease_key(job.key)],
            args=[job.kind, job.key, orjson.dumps(job.payload), now_ms(), IDEMPOTENCY_TTL_S,
                  lease_ms, lease_owner],
        )
        return bool(int(created)), str(state), str(entry_id), orjson.loads(error) if error else None

    async def finish(
        self, job: Job, entry_id: str, owner: str, state: str, letter: dict[str, Any] | None
    ) -> None:
        """Record `done` or `dead` (with its dead letter), drop the entry, release the lease."""
        await self._finish(
            keys=[job_key(job.key), STREAM, lease_key(job.key), DEAD_LETTERS],
            args=[state, entry_id, owner, now_ms(), GROUP,
                  orjson.dumps(letter) if letter else "", IDEMPOTENCY_TTL_S, DEAD_LETTERS_MAX],
        )

    async def lease(self, key: str, owner: str, lease_ms: int) -> bool:
        return bool(await self._redis.set(lease_key(key), owner, nx=True, px=lease_ms))

    async def release(self, key: str, owner: str) -> None:
        await self._release(keys=[lease_key(key)], args=[owner])

    async def progress(self, key: str) -> tuple[bool, str | None]:
        """(accepted, state) of a key."""
        accepted, state = await self._redis.hmget(job_key(key), ["accepted", "state"])
        return accepted == "1", None if state is None else str(state)

    async def mark_accepted(self, key: str) -> None:
        await self._redis.hset(job_key(key), "accepted", "1")

    async def count_attempt(self, key: str) -> int:
        return int(await self._redis.hincrby(job_key(key), "attempts", 1))

    async def bury_unreadable(self, entry_id: str, fields: dict[str, str], reason: str) -> str:
        """Move an entry that is no job to the dead letters; returns the kind it claimed."""
        letter = {"entry": entry_id, "kind": fields.get("kind", ""), "key": fields.get("key", ""),
                  "job": fields.get("job", ""), "attempts": 0, "ts": now_ms(),
                  "error": {"code": "unreadable", "message": reason}}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(DEAD_LETTERS, {"e": orjson.dumps(letter)}, maxlen=DEAD_LETTERS_MAX)
            pipe.xack(STREAM, GROUP, entry_id)
            pipe.xdel(STREAM, entry_id)
            await pipe.execute()
        return str(letter["kind"])

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        entries: list[Entry] = await self._redis.xrevrange(  # type: ignore[assignment]
            DEAD_LETTERS, count=limit
        )
        return [{"id": entry_id, **orjson.loads(fields["e"])} for entry_id, fields in entries]

    async def queued(self) -> int:
        return int(await self._redis.xlen(STREAM))

    # The consumer group.

    async def create_group(self, stale_consumer_ms: int) -> None:
        """The group (if missing), without consumers idle that long with nothing pending."""
        try:
            await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        for consumer in await self._redis.xinfo_consumers(STREAM, GROUP):
            if consumer["pending"] == 0 and consumer["idle"] > stale_consumer_ms:
                await self._redis.xgroup_delconsumer(STREAM, GROUP, consumer["name"])

    async def read(
        self, consumer: str, after: str, count: int, block_ms: int | None = None
    ) -> list[Entry]:
        """`after` ">" reads new entries; an id reads the consumer's own pending ones after it."""
        answer = await self._redis.xreadgroup(
            GROUP, consumer, {STREAM: after}, count, block=block_ms
        )
        return _entries(answer)

    async def claim(
        self, consumer: str, min_idle_ms: int, start: str, count: int
    ) -> tuple[str, list[Entry]]:
        """Entries other consumers left pending that long (XAUTOCLAIM): next start, entries."""
        answer: Any = await self._redis.xautoclaim(
            STREAM, GROUP, consumer, min_idle_ms, start, count
        )
        return str(answer[0]), list(answer[1])

    async def ack(self, entry_id: str) -> None:
        await self._redis.xack(STREAM, GROUP, entry_id)


def _entries(answer: Any) -> list[Entry]:
    """The entries of an XREADGROUP answer for the one outbox stream."""
    if not answer:
        return []
    entries: list[Entry] = answer[0][1]
    return entries
