"""The durable outbox: work for cTrader and partner webhooks goes to a Redis stream, then out.

A job is written to the stream `invite:{outbox}:stream` with its idempotency key before anything
is sent; the key's state (`queued`, `done`, `dead`) lives beside it for 90 days, so a duplicate
submission answers the first one's state instead of doing the work twice. The submitting request
may send the job at once (holding a lease on its key); every edge process also runs a worker in
the consumer group `senders` that sends what is still queued: its own pending entries, entries a
dead process left idle (XAUTOCLAIM), and new ones. Retryable failures shut a per-destination gate
(one probe at a time, backed off with jitter) and leave the job queued; final ones move it to the
dead letters `invite:{outbox}:dead`, which operators read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from edge.backoff import Gate, RetryPolicy
from edge.errors import InviteError, UpstreamError

log = logging.getLogger("invite.outbox")

PREFIX = "invite:{outbox}:"  # one hash tag: the scripts' keys share a Redis Cluster slot
STREAM = PREFIX + "stream"
DEAD_LETTERS = PREFIX + "dead"
GROUP = "senders"
IDEMPOTENCY_TTL_S = 90 * 86_400
DEAD_LETTERS_MAX = 10_000
SCAN_INTERVAL_S = 0.5
READ_BLOCK_MS = 250
PAGE = 100
LEASE_MARGIN_S = 5.0
ACCEPT_LEASE_MS = 10_000
STALE_CONSUMER_MS = 86_400_000
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


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


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


class Sender(Protocol):
    kind: str

    def destination(self, job: Job) -> str | None:
        """The gate the job goes through (one per backend); None while it cannot be sent."""

    async def send(self, job: Job) -> None:
        """Send it; an InviteError that is not `retryable` makes it a dead letter."""


Accept = Callable[[Job], Awaitable[None]]


def dead_letter(job: Job, entry_id: str, exc: BaseException, attempts: int) -> dict[str, Any]:
    return {
        "entry": entry_id, "kind": job.kind, "key": job.key, "job": job.payload,
        "attempts": attempts, "ts": _now_ms(), "error": describe_error(exc),
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


class Outbox:
    def __init__(
        self,
        redis: Redis,
        policy: RetryPolicy,
        *,
        concurrency: int = 32,
        claim_idle_ms: int = 60_000,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._redis = redis
        self._policy = policy
        self._claim_idle_ms = claim_idle_ms
        self._lease_ms = int((policy.worst_case_s + LEASE_MARGIN_S) * 1000)
        self._slots = asyncio.Semaphore(concurrency)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._senders: dict[str, tuple[Sender, Accept | None]] = {}
        self._gates: dict[str, Gate] = {}
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._rescan = asyncio.Event()
        self._group_ready = False
        self._stopping = False
        self._enqueue = redis.register_script(_ENQUEUE)
        self._finish_script = redis.register_script(_FINISH)
        self._release_script = redis.register_script(_RELEASE)
        self.sent = Counter("invite_outbox_sent", "Outbox jobs done", ["kind"], registry=registry)
        self.retried = Counter(
            "invite_outbox_retries", "Outbox sends that failed and stay queued", ["kind"],
            registry=registry,
        )
        self.dead = Counter(
            "invite_outbox_dead_letters", "Outbox jobs given up (final errors)", ["kind"],
            registry=registry,
        )

    def register(self, sender: Sender, on_accepted: Accept | None = None) -> None:
        """`on_accepted` runs once per new job (and again by a worker if it did not finish)."""
        self._senders[sender.kind] = (sender, on_accepted)

    def gate(self, destination: str) -> Gate:
        gate = self._gates.get(destination)
        if gate is None:
            gate = self._gates[destination] = Gate(self._policy)
        return gate

    async def submit(self, job: Job, budget_s: float) -> Outcome:
        """Write the job to the stream (once per key), then try to send it within `budget_s`."""
        sender, _ = self._senders[job.kind]
        destination = sender.destination(job)
        inline = budget_s > 0 and destination is not None and self.gate(destination).open
        owner = secrets.token_hex(8)
        created, state, entry_id, error = await self._enqueue(
            keys=[job_key(job.key), STREAM, lease_key(job.key)],
            # The lease keeps workers off the job while it is accepted (and sent, if inline).
            args=[job.kind, job.key, orjson.dumps(job.payload), _now_ms(), IDEMPOTENCY_TTL_S,
                  self._lease_ms if inline else ACCEPT_LEASE_MS, owner],
        )
        if not int(created):
            running = self._inflight.get(job.key)
            if state == QUEUED and running is not None:
                return await _within(running, budget_s, duplicate=True)
            return Outcome(str(state), True, orjson.loads(error) if error else None)
        await self._accept(job)
        if not inline or destination is None:
            await self._release_script(keys=[lease_key(job.key)], args=[owner])
            self._rescan.set()
            return Outcome(QUEUED)
        delivery = self._spawn(self._deliver(job, str(entry_id), owner, sender, destination))
        return await _within(delivery, budget_s, duplicate=False)

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        entries: list[tuple[str, dict[str, str]]] = await self._redis.xrevrange(  # type: ignore[assignment]
            DEAD_LETTERS, count=limit
        )
        return [{"id": entry_id, **orjson.loads(fields["e"])} for entry_id, fields in entries]

    async def queued(self) -> int:
        return int(await self._redis.xlen(STREAM))

    async def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="outbox")

    async def close(self, deadline_s: float) -> None:
        """Stop taking work, let what is in flight finish within the deadline, cancel the rest."""
        self._stopping = True
        if self._worker is not None:
            self._worker.cancel()
            # Bounded: a cancellation that meets a socket timeout can come out as TimeoutError.
            await asyncio.wait({self._worker}, timeout=deadline_s)
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=deadline_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)

    # Sending.

    def _spawn(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("an outbox send stays queued: %s", type(task.exception()).__name__)

    async def _accept(self, job: Job) -> None:
        _, on_accepted = self._senders[job.kind]
        if on_accepted is not None:
            await on_accepted(job)
        await self._redis.hset(job_key(job.key), "accepted", "1")

    async def _deliver(
        self, job: Job, entry_id: str, owner: str, sender: Sender, destination: str
    ) -> Outcome:
        gate = self.gate(destination)
        current = asyncio.current_task()
        assert current is not None
        self._inflight[job.key] = current
        try:
            await sender.send(job)
        except Exception as exc:
            if isinstance(exc, InviteError) and not exc.retryable:
                attempts = int(await self._redis.hincrby(job_key(job.key), "attempts", 1))
                letter = dead_letter(job, entry_id, exc, attempts)
                await self._finish(job, entry_id, owner, DEAD, letter)
                gate.leave()
                self.dead.labels(job.kind).inc()
                log.warning("outbox %s %s is a dead letter: %s", job.kind, job.key,
                            letter["error"]["message"])
                return Outcome(DEAD, error=letter["error"])
            if gate.failed():
                log.warning("%s failed (%s): queued work waits and is retried with backoff",
                            destination, describe_error(exc)["message"])
            if not isinstance(exc, InviteError):
                log.error("outbox %s %s failed unexpectedly", job.kind, job.key, exc_info=exc)
            self.retried.labels(job.kind).inc()
            await self._redis.hincrby(job_key(job.key), "attempts", 1)
            await self._release_script(keys=[lease_key(job.key)], args=[owner])
            return Outcome(QUEUED)
        finally:
            self._inflight.pop(job.key, None)
        if gate.succeeded():
            log.info("%s answers again: sending the queued work", destination)
            self._rescan.set()
        await self._finish(job, entry_id, owner, DONE, None)
        self.sent.labels(job.kind).inc()
        return Outcome(DONE)

    async def _finish(
        self, job: Job, entry_id: str, owner: str, state: str, letter: dict[str, Any] | None
    ) -> None:
        await self._finish_script(
            keys=[job_key(job.key), STREAM, lease_key(job.key), DEAD_LETTERS],
            args=[state, entry_id, owner, _now_ms(), GROUP,
                  orjson.dumps(letter) if letter else "", IDEMPOTENCY_TTL_S, DEAD_LETTERS_MAX],
        )

    # The worker.

    async def _run(self) -> None:
        failing = False
        next_scan = 0.0
        while not self._stopping:
            try:
                if not self._group_ready:
                    await self._create_group()
                if self._rescan.is_set() or time.monotonic() >= next_scan:
                    self._rescan.clear()
                    await self._scan_own_pending()
                    await self._claim_abandoned()
                    next_scan = time.monotonic() + SCAN_INTERVAL_S
                await self._read_new()
                if failing:
                    log.info("the outbox worker's Redis calls work again")
                    failing = False
            except (RedisError, OSError) as exc:
                if self._stopping:
                    return
                if not failing:
                    log.warning("the outbox worker's Redis calls fail (%s); retrying",
                                type(exc).__name__)
                    failing = True
                self._group_ready = False  # a Redis that lost its data lost the group too
                await asyncio.sleep(SCAN_INTERVAL_S)

    async def _create_group(self) -> None:
        try:
            await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        for consumer in await self._redis.xinfo_consumers(STREAM, GROUP):
            if consumer["pending"] == 0 and consumer["idle"] > STALE_CONSUMER_MS:
                await self._redis.xgroup_delconsumer(STREAM, GROUP, consumer["name"])
        self._group_ready = True

    async def _scan_own_pending(self) -> None:
        cursor = "0"
        while True:
            entries = _entries(
                await self._redis.xreadgroup(GROUP, self.consumer, {STREAM: cursor}, PAGE)
            )
            for entry_id, fields in entries:
                await self._dispatch(entry_id, fields)
            if len(entries) < PAGE:
                return
            cursor = entries[-1][0]

    async def _claim_abandoned(self) -> None:
        start = "0-0"
        while True:
            answer: Any = await self._redis.xautoclaim(
                STREAM, GROUP, self.consumer, self._claim_idle_ms, start, PAGE
            )
            start = str(answer[0])
            for entry_id, fields in answer[1]:
                await self._dispatch(entry_id, fields)
            if start == "0-0":
                return

    async def _read_new(self) -> None:
        answer = await self._redis.xreadgroup(
            GROUP, self.consumer, {STREAM: ">"}, PAGE, block=READ_BLOCK_MS
        )
        for entry_id, fields in _entries(answer):
            await self._dispatch(entry_id, fields)

    async def _dispatch(self, entry_id: str, fields: dict[str, str]) -> None:
        if entry_id in self._busy:
            return
        if not fields:  # done and deleted by another process, still listed as pending here
            await self._redis.xack(STREAM, GROUP, entry_id)
            return
        try:
            job = Job.from_fields(fields)
            registered = self._senders.get(job.kind)
            if registered is None:
                raise ValueError(f"no sender for job kind {job.kind!r}")
        except ValueError as exc:
            await self._bury_unreadable(entry_id, fields, str(exc))
            return
        sender, _ = registered
        destination = sender.destination(job)
        if job.key in self._inflight or destination is None:
            return
        gate = self.gate(destination)
        if not gate.try_enter():
            return
        await self._slots.acquire()
        self._busy.add(entry_id)
        self._spawn(self._take(entry_id, job, sender, destination))

    async def _take(self, entry_id: str, job: Job, sender: Sender, destination: str) -> None:
        gate = self.gate(destination)
        try:
            owner = secrets.token_hex(8)
            if not await self._redis.set(lease_key(job.key), owner, nx=True, px=self._lease_ms):
                gate.leave()  # someone is sending it right now
                return
            accepted, state = await self._redis.hmget(job_key(job.key), ["accepted", "state"])
            if state in (DONE, DEAD):
                gate.leave()
                await self._finish(job, entry_id, owner, str(state), None)
                return
            if accepted != "1":
                await self._accept(job)
            await self._deliver(job, entry_id, owner, sender, destination)
        except (RedisError, OSError) as exc:
            gate.leave()
            log.warning("outbox %s %s stays queued: Redis failed (%s)", job.kind, job.key,
                        type(exc).__name__)
        finally:
            self._busy.discard(entry_id)
            self._slots.release()

    async def _bury_unreadable(self, entry_id: str, fields: dict[str, str], reason: str) -> None:
        letter = {"entry": entry_id, "kind": fields.get("kind", ""), "key": fields.get("key", ""),
                  "job": fields.get("job", ""), "attempts": 0, "ts": _now_ms(),
                  "error": {"code": "unreadable", "message": reason}}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(DEAD_LETTERS, {"e": orjson.dumps(letter)}, maxlen=DEAD_LETTERS_MAX)
            pipe.xack(STREAM, GROUP, entry_id)
            pipe.xdel(STREAM, entry_id)
            await pipe.execute()
        self.dead.labels(letter["kind"] or "unknown").inc()
        log.warning("outbox entry %s is unreadable (%s): moved to the dead letters",
                    entry_id, reason)


def _entries(answer: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of an XREADGROUP answer for the one outbox stream."""
    if not answer:
        return []
    entries: list[tuple[str, dict[str, str]]] = answer[0][1]
    return entries


async def _within(work: asyncio.Future[Outcome], budget_s: float, *, duplicate: bool) -> Outcome:
    """The work's outcome if it ends within the budget, else `queued` (it goes on regardless)."""
    done, _ = await asyncio.wait({work}, timeout=budget_s)
    if not done:
        return Outcome(QUEUED, duplicate)
    outcome = work.result()
    return Outcome(outcome.state, duplicate, outcome.error)
