"""The durable outbox: work for cTrader and partner webhooks goes to a Redis stream, then out.

A job is written with its idempotency key before anything is sent (`edge.sso.jobs`); a duplicate
submission answers the first one's state instead of doing the work twice. The submitting request
may send the job at once (holding a lease on its key); every edge process also runs a worker in
the consumer group `senders` that sends what is still queued: its own pending entries, entries a
dead process left idle (XAUTOCLAIM), and new ones. Retryable failures shut a per-destination gate
(one probe at a time, backed off with jitter) and leave the job queued; final ones move it to the
dead letters, which operators read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from edge.backoff import Gate, RetryPolicy
from edge.errors import InviteError
from edge.sso.jobs import DEAD, DONE, QUEUED, Job, JobStore, Outcome, dead_letter, describe_error

log = logging.getLogger("invite.outbox")

SCAN_INTERVAL_S = 0.5
READ_BLOCK_MS = 250
PAGE = 100
LEASE_MARGIN_S = 5.0
ACCEPT_LEASE_MS = 10_000
STALE_CONSUMER_MS = 86_400_000


class Sender(Protocol):
    kind: str

    def destination(self, job: Job) -> str | None:
        """The gate the job goes through (one per backend); None while it cannot be sent."""

    async def send(self, job: Job) -> None:
        """Send it; an InviteError that is not `retryable` makes it a dead letter."""


Accept = Callable[[Job], Awaitable[None]]


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
        self._store = JobStore(redis)
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
        # The lease keeps workers off the job while it is accepted (and sent, if inline).
        created, state, entry_id, error = await self._store.enqueue(
            job, owner, self._lease_ms if inline else ACCEPT_LEASE_MS
        )
        if not created:
            running = self._inflight.get(job.key)
            if state == QUEUED and running is not None:
                return await _within(running, budget_s, duplicate=True)
            return Outcome(state, True, error)
        await self._accept(job)
        if not inline or destination is None:
            await self._store.release(job.key, owner)
            self._rescan.set()
            return Outcome(QUEUED)
        delivery = self._spawn(self._deliver(job, entry_id, owner, sender, destination))
        return await _within(delivery, budget_s, duplicate=False)

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        return await self._store.dead_letters(limit)

    async def queued(self) -> int:
        return await self._store.queued()

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
        await self._store.mark_accepted(job.key)

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
                attempts = await self._store.count_attempt(job.key)
                letter = dead_letter(job, entry_id, exc, attempts)
                await self._store.finish(job, entry_id, owner, DEAD, letter)
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
            await self._store.count_attempt(job.key)
            await self._store.release(job.key, owner)
            return Outcome(QUEUED)
        finally:
            self._inflight.pop(job.key, None)
        if gate.succeeded():
            log.info("%s answers again: sending the queued work", destination)
            self._rescan.set()
        await self._store.finish(job, entry_id, owner, DONE, None)
        self.sent.labels(job.kind).inc()
        return Outcome(DONE)

    # The worker.

    async def _run(self) -> None:
        failing = False
        next_scan = 0.0
        while not self._stopping:
            try:
                if not self._group_ready:
                    await self._store.create_group(STALE_CONSUMER_MS)
                    self._group_ready = True
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

    async def _scan_own_pending(self) -> None:
        cursor = "0"
        while True:
            entries = await self._store.read(self.consumer, cursor, PAGE)
            for entry_id, fields in entries:
                await self._dispatch(entry_id, fields)
            if len(entries) < PAGE:
                return
            cursor = entries[-1][0]

    async def _claim_abandoned(self) -> None:
        start = "0-0"
        while True:
            start, entries = await self._store.claim(
                self.consumer, self._claim_idle_ms, start, PAGE
            )
            for entry_id, fields in entries:
                await self._dispatch(entry_id, fields)
            if start == "0-0":
                return

    async def _read_new(self) -> None:
        for entry_id, fields in await self._store.read(self.consumer, ">", PAGE, READ_BLOCK_MS):
            await self._dispatch(entry_id, fields)

    async def _dispatch(self, entry_id: str, fields: dict[str, str]) -> None:
        if entry_id in self._busy:
            return
        if not fields:  # done and deleted by another process, still listed as pending here
            await self._store.ack(entry_id)
            return
        try:
            job = Job.from_fields(fields)
            registered = self._senders.get(job.kind)
            if registered is None:
                raise ValueError(f"no sender for job kind {job.kind!r}")
        except ValueError as exc:
            kind = await self._store.bury_unreadable(entry_id, fields, str(exc))
            self.dead.labels(kind or "unknown").inc()
            log.warning("outbox entry %s is unreadable (%s): moved to the dead letters",
                        entry_id, exc)
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
            if not await self._store.lease(job.key, owner, self._lease_ms):
                gate.leave()  # someone is sending it right now
                return
            accepted, state = await self._store.progress(job.key)
            if state in (DONE, DEAD):
                gate.leave()
                await self._store.finish(job, entry_id, owner, str(state), None)
                return
            if not accepted:
                await self._accept(job)
            await self._deliver(job, entry_id, owner, sender, destination)
        except (RedisError, OSError) as exc:
            gate.leave()
            log.warning("outbox %s %s stays queued: Redis failed (%s)", job.kind, job.key,
                        type(exc).__name__)
        finally:
            self._busy.discard(entry_id)
            self._slots.release()


async def _within(work: asyncio.Future[Outcome], budget_s: float, *, duplicate: bool) -> Outcome:
    """The work's outcome if it ends within the budget, else `queued` (it goes on regardless)."""
    done, _ = await asyncio.wait({work}, timeout=budget_s)
    if not done:
        return Outcome(QUEUED, duplicate)
    outcome = work.result()
    return Outcome(outcome.state, duplicate, outcome.error)
