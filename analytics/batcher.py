"""The batcher: the click stream into `invite.clicks` (and its views), each click once; the
conversion stream into `invite.conversions` the same way.

    read (XREADGROUP, own pending first, XAUTOCLAIMed entries of dead consumers)
      → check and enrich each entry (analytics.enrich.click_line: the edge's JSON goes on as it
        came, the derived fields appended); a bad one stays pending until its Nth delivery, then
        goes to the dead-letter stream with the reason
      → under the insert lock: drop click_ids already in `clicks` or twice in the batch, insert
        the lines into `clicks_ingest` (ClickHouse parses them; its view writes `clicks`) with a
        deduplication token made of the entries' ids; a line ClickHouse refuses is found by
        halving and dead-lettered at once
      → XACK, then XTRIM below the oldest entry any group still needs.

A crash anywhere before XACK leaves the entries pending: whoever reads them next finds their
click_ids in `clicks` and only acknowledges them. ClickHouse or Redis down: the batch is retried
with exponential backoff; nothing is acknowledged until it is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import LockNotOwnedError, RedisError, ResponseError

from analytics.clickhouse import InsertOutcome, insert_new_clicks
from analytics.conversions import conversion_line, insert_conversions
from analytics.enrich import BadEvent, click_line
from edge.config import CLICK_STREAM, CONVERSION_STREAM
from edge.errors import ConfigError

log = logging.getLogger("invite.batcher")

GROUP = "batcher"
DEAD_LETTER_STREAM = "invite:clicks:dead"
# One insert at a time across all batchers: "which click_ids are new" and the insert that follows
# must not interleave with another batcher's, or a click claimed by two of them counts twice.
INSERT_LOCK_KEY = "invite:clicks:insert-lock"
# Renewed every third of it while an insert runs; a batcher that dies holding the lock holds up
# the others for at most this long.
INSERT_LOCK_TTL_S = 10.0
BATCH_MAX_ROWS = 50_000
# Half a second, not the 1 s ClickHouse suggests: with the views the API reads, a batch takes up
# to a second to insert on two cores, and clicks must show within 2 s (docs/benchmarks.md).
FLUSH_INTERVAL_S = 0.5
MAX_DELIVERIES = 5
CLAIM_IDLE_MS = 60_000
READ_COUNT = 10_000
# A blocking read waits at most this long, so stop() is seen within it whatever the flush
# interval; the Redis client's socket timeout must be longer.
READ_BLOCK_MAX_MS = 1000
RETRY_MIN_S = 0.25
RETRY_MAX_S = 30.0
STOP_DEADLINE_S = 10.0
# Acknowledges the entry ids in ARGV[2] (comma-separated) for group ARGV[1]: one argument to
# encode instead of one per entry (docs/benchmarks.md, "Pipeline").
ACK_SCRIPT = """
local ids, acked = {}, 0
for id in string.gmatch(ARGV[2], '[^,]+') do
  ids[#ids + 1] = id
  if #ids == 1000 then
    acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
    ids = {}
  end
end
if #ids > 0 then acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids)) end
return acked
"""


def tune_gc() -> None:
    """Fit the garbage collector to a process that handles 50,000 events at a time.

    A batch is tens of thousands of fresh dicts and lists, none in a cycle; with Python's
    default thresholds the collector ran every 700 of them and kept re-scanning the batch and
    everything loaded at start (the UA parser's rules), which took more of the batcher's time
    than the events did (docs/benchmarks.md, "Pipeline"). What exists now is frozen (never
    scanned again) and young collections run every 50,000 allocations.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class BatcherMetrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, prefix: str = "invite_batcher"
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.lag = Gauge(
            f"{prefix}_lag", "Stream entries not yet in ClickHouse: pending plus unread",
            registry=r,
        )
        self.batch_rows = Histogram(
            f"{prefix}_batch_rows", "Entries per flushed batch",
            buckets=(10, 100, 1000, 5000, 10_000, 25_000, 50_000, 100_000), registry=r,
        )
        self.insert_seconds = Histogram(
            f"{prefix}_insert_seconds", "Duplicate check plus insert of one batch",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=r,
        )
        self.rows_inserted = Counter(
            f"{prefix}_rows_inserted", "Rows inserted into ClickHouse", registry=r
        )
        self.duplicates = Counter(
            f"{prefix}_duplicates_skipped",
            "Entries already in ClickHouse or earlier in the batch", registry=r,
        )
        self.dead_letters = Counter(
            f"{prefix}_dead_letters", "Entries moved to the dead-letter stream", registry=r
        )
        self.failures = Counter(
            f"{prefix}_flush_failures", "Failed flush attempts (retried with backoff)",
            ["error"], registry=r,
        )
        self.claimed = Counter(
            f"{prefix}_claimed", "Entries taken over from idle consumers", registry=r
        )


@dataclass(frozen=True)
class Sink:
    """What one stream holds and where it goes: `prepare` checks an entry's field `e` (BadEvent
    says why not) and returns the event's key, its time in ms and the line to insert; `insert`
    (blocking) writes the lines whose key is not in the table yet, with a deduplication token
    made of the entry ids."""

    name: str
    prepare: Callable[[bytes | str | None], tuple[str, int, bytes]]
    insert: Callable[..., InsertOutcome]
    stream: str
    dead_letter_stream: str
    insert_lock_key: str


CLICKS = Sink(
    "clicks", click_line, insert_new_clicks, CLICK_STREAM, DEAD_LETTER_STREAM,
    INSERT_LOCK_KEY,
)
# Registrations from the SSO hook (edge/conversions.py): few, so small batches suffice.
CONVERSIONS = Sink(
    "conversions", conversion_line, insert_conversions, CONVERSION_STREAM,
    "invite:conversions:dead", "invite:conversions:insert-lock",
)
CONVERSIONS_BATCH_MAX_ROWS = 5_000


@dataclass(slots=True)
class _Entry:
    entry_id: str
    exists: bool  # False: the entry was trimmed while pending
    payload: bytes | str | None  # its field `e`; None when it has none
    key: str = ""  # click_id or event_id, once checked
    ts: int = 0  # the event's time in ms
    line: bytes = b""  # what is inserted
    reason: str = ""  # why it is not an event of the stream's kind


@dataclass
class BatcherStats:
    inserted: int = 0  # rows written to the sink's table
    duplicates: int = 0  # entries acknowledged without a row: key known, or entry deleted
    dead_letters: int = 0
    batches: int = 0
    lag: int = 0  # entries of the stream not in ClickHouse yet: pending plus unread
    failing_since: float | None = None  # monotonic time of the first failure of a retry run


class Batcher:
    """Consumes one stream (the clicks, or another `sink`) in a consumer group; `run()` until
    `stop()`.

    `redis` may decode responses or not; its socket timeout must exceed READ_BLOCK_MAX_MS.
    Give the batchers a client of their own: its XREADGROUP replies are switched to Redis's
    own shape (nested lists), as turning each entry into a dict cost more than reading it.
    `clickhouse` is used from a worker thread, one call at a time.
    """

    def __init__(
        self,
        redis: Redis,
        clickhouse: Client,
        *,
        consumer: str,
        sink: Sink | None = None,
        stream: str | None = None,
        group: str = GROUP,
        batch_max_rows: int = BATCH_MAX_ROWS,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        max_deliveries: int = MAX_DELIVERIES,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        dead_letter_stream: str | None = None,
        registry: CollectorRegistry | None = None,
        metrics: BatcherMetrics | None = None,
        insert_lock_key: str | None = None,
        insert_lock_ttl_s: float = INSERT_LOCK_TTL_S,
    ) -> None:
        if batch_max_rows < 1:
            raise ConfigError(f"batch_max_rows={batch_max_rows} must be at least 1")
        if max_deliveries < 1:
            raise ConfigError(f"max_deliveries={max_deliveries} must be at least 1")
        if claim_idle_ms <= flush_interval_s * 1000:
            # Otherwise a live batcher's own unflushed entries would look abandoned.
            raise ConfigError(
                f"claim_idle_ms={claim_idle_ms} must exceed the flush interval "
                f"({flush_interval_s * 1000:.0f} ms)"
            )
        self.sink = sink = sink or CLICKS
        self._redis = redis
        redis.set_response_callback("XREADGROUP", _unparsed)
        self._ack_script = redis.register_script(ACK_SCRIPT)
        self._clickhouse = clickhouse
        self.consumer = consumer
        self.stream = stream or sink.stream
        self.group = group
        self._batch_max = batch_max_rows
        self._flush_interval = flush_interval_s
        self._max_deliveries = max_deliveries
        self._claim_idle_ms = claim_idle_ms
        self._dead_letters = dead_letter_stream or sink.dead_letter_stream
        self.metrics = metrics or BatcherMetrics(registry)
        self._lock_key = insert_lock_key or sink.insert_lock_key
        self._lock_ttl = insert_lock_ttl_s
        self.stats = BatcherStats()
        self._stopping = asyncio.Event()
        self._own_cursor: str | None = "0"  # our own pending entries are read before new ones
        self._claimed: list[_Entry] = []
        self._next_claim = 0.0

    def stop(self) -> None:
        """Stop reading; what was read is flushed (within STOP_DEADLINE_S), then run() returns."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        await self._retrying("create the consumer group", self.ensure_group)
        # The next batch is read and checked while the previous one is inserted (in a thread;
        # chDB and the network release the GIL; docs/benchmarks.md, "Pipeline"). Inserts stay one
        # at a time and in order; entries read ahead are pending until their own commit.
        committing: asyncio.Task[None] | None = None
        try:
            while not self.stopping:
                batch = await self._retrying("read the stream", self._collect)
                if batch:
                    ready = await asyncio.to_thread(_sort, batch, self.sink)
                    if committing is not None:
                        await committing
                    committing = asyncio.create_task(self._commit(ready))
                if committing is None or committing.done():
                    await self._retrying("maintain the stream", self._maintain)
        finally:
            if committing is not None:
                await committing

    async def _collect(self) -> list[_Entry]:
        """Up to batch_max_rows entries: claimed first, then our own pending, then new ones.

        Returns when full, flush_interval after its first entry, when the stream stays quiet
        for flush_interval, or on stop.
        """
        batch: list[_Entry] = []
        deadline: float | None = None
        while len(batch) < self._batch_max:
            room = self._batch_max - len(batch)
            if self._claimed:
                batch.extend(self._claimed[:room])
                del self._claimed[:room]
                continue
            if self._own_cursor is not None:
                entries = await self._read(self._own_cursor, min(room, READ_COUNT), None)
                self._own_cursor = entries[-1].entry_id if entries else None
                batch.extend(entries)
                continue
            if self.stopping:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            wait_s = self._flush_interval if deadline is None else deadline - now
            block_ms = min(READ_BLOCK_MAX_MS, max(1, int(wait_s * 1000)))
            entries = await self._read(">", min(room, READ_COUNT), block_ms)
            if not entries:
                if deadline is None:
                    break  # quiet stream: give maintenance and stop() their turn
                continue
            if deadline is None:
                deadline = time.monotonic() + self._flush_interval
            batch.extend(entries)
        return batch

    async def _read(self, start: str, count: int, block_ms: int | None) -> list[_Entry]:
        try:
            reply = await self._redis.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
            )
        except (RedisError, OSError):
            # Entries of a batch lost with this failure are pending under our name: read them
            # again first, once Redis answers.
            self._own_cursor = "0"
            self._claimed.clear()
            raise
        return [
            _Entry(_text(entry_id), fields is not None, _payload(fields))
            for entry_id, fields in _stream_entries(reply)
            if entry_id is not None
        ]

    async def _commit(self, ready: _Sorted) -> None:
        """Insert what is new, acknowledge the batch, dead-letter what is hopeless."""
        self.metrics.batch_rows.observe(ready.size)
        await self._retrying(
            f"insert {self.sink.name}", lambda: self._insert_and_ack(ready.fresh, ready.repeated),
            until_stopped=False,
        )
        if ready.bad:
            await self._retrying("handle bad entries", lambda: self._handle_bad(ready.bad))
        self.stats.batches += 1

    async def _insert_and_ack(self, entries: list[_Entry], also_ack: list[_Entry]) -> None:
        # Safe to repeat from the top: entries already inserted are found and only acknowledged.
        if entries:
            started = time.perf_counter()
            async with self._insert_lock():
                outcome = await asyncio.to_thread(self._insert_new, entries)
            self.metrics.insert_seconds.observe(time.perf_counter() - started)
            inserted, skipped = outcome.inserted, outcome.present
            self.metrics.rows_inserted.inc(inserted)
            self.metrics.duplicates.inc(skipped + len(also_ack))
            self.stats.inserted += inserted
            self.stats.duplicates += skipped + len(also_ack)
            for index, reason in outcome.refused:
                await self._dead_letter(entries[index], reason)
        else:
            self.metrics.duplicates.inc(len(also_ack))
            self.stats.duplicates += len(also_ack)
        ids = ",".join([entry.entry_id for entry in entries + also_ack])
        if ids:
            await self._ack_script(keys=[self.stream], args=[self.group, ids])

    @contextlib.asynccontextmanager
    async def _insert_lock(self) -> AsyncIterator[None]:
        lock = self._redis.lock(self._lock_key, timeout=self._lock_ttl, blocking_timeout=None)
        await lock.acquire()

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._lock_ttl / 3)
                await lock.reacquire()

        renewer = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
            try:
                await lock.release()
            except LockNotOwnedError:
                # Renewal failed (Redis away): another batcher may have inserted meanwhile. Only
                # a click both of us held could count twice; say so.
                log.warning("the insert lock expired during an insert")

    def _insert_new(self, entries: list[_Entry]) -> InsertOutcome:
        """In a worker thread: the entries not in the table yet, inserted."""
        return self.sink.insert(
            self._clickhouse, [entry.key for entry in entries], [entry.ts for entry in entries],
            [entry.line for entry in entries], [entry.entry_id for entry in entries],
            token_prefix=self.stream,
        )

    async def _handle_bad(self, bad: list[_Entry]) -> None:
        """Dead-letter the bad entries delivered max_deliveries times; the others stay pending."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry in bad:
                pipe.xpending_range(self.stream, self.group, entry.entry_id, entry.entry_id, 1)
            replies = await pipe.execute()
        for entry, reply in zip(bad, replies, strict=True):
            if not reply:
                continue  # no longer pending: another batcher took it over and settled it
            deliveries = int(reply[0]["times_delivered"])
            if deliveries >= self._max_deliveries:
                await self._dead_letter(entry, entry.reason)
            else:
                log.warning(
                    "%s entry %s is not a valid event (%s); delivery %d of %d",
                    self.stream, entry.entry_id, entry.reason, deliveries, self._max_deliveries,
                )

    async def _dead_letter(self, entry: _Entry, reason: str) -> None:
        raw = entry.payload if entry.payload is not None else b""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._dead_letters, {
                "e": raw, "reason": reason, "stream": self.stream, "entry_id": entry.entry_id,
            })
            pipe.xack(self.stream, self.group, entry.entry_id)
            await pipe.execute()
        self.metrics.dead_letters.inc()
        self.stats.dead_letters += 1
        log.error("stream entry %s moved to %s: %s", entry.entry_id, self._dead_letters, reason)

    async def _maintain(self) -> None:
        """Claim what dead consumers left, trim what every group has acknowledged, report lag."""
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self._claim_idle_ms / 2000
            await self._claim_idle()
        groups = await self._redis.xinfo_groups(self.stream)
        floor: str | None = None
        for group in groups:
            name = _text(group["name"])
            if int(group["pending"]):
                summary = await self._redis.xpending(self.stream, name)
                oldest = _text(summary["min"])
            else:
                oldest = _next_id(_text(group["last-delivered-id"]))
            floor = oldest if floor is None or _id_key(oldest) < _id_key(floor) else floor
            if name == self.group:
                unread = group.get("lag")
                if unread is None:  # Redis cannot tell after trims or deletes: XLEN bounds it
                    unread = await self._redis.xlen(self.stream)
                self.stats.lag = int(group["pending"]) + int(unread)
                self.metrics.lag.set(self.stats.lag)
        if floor is not None:
            # Approximate trimming only cuts whole nodes below the floor: never an entry we need.
            await self._redis.xtrim(self.stream, minid=floor, approximate=True)

    async def _claim_idle(self) -> None:
        cursor = "0-0"
        while len(self._claimed) < self._batch_max:
            reply = await self._redis.xautoclaim(
                self.stream, self.group, self.consumer, self._claim_idle_ms, cursor,
                count=min(READ_COUNT, self._batch_max),
            )
            cursor = _text(reply[0])
            claimed = [
                _Entry(_text(i), fields is not None, _payload(fields))
                for i, fields in reply[1] if i is not None
            ]
            if claimed:
                self.metrics.claimed.inc(len(claimed))
                log.info("took over %d entries idle for over %d ms", len(claimed),
                         self._claim_idle_ms)
                self._claimed.extend(claimed)
            if cursor == "0-0":
                return

    async def _retrying(self, what: str, action: Any, *, until_stopped: bool = True) -> Any:
        """Run `action()` until it succeeds, backing off exponentially; give up only on stop.

        With until_stopped=False (a batch in hand), keep trying for STOP_DEADLINE_S after stop()
        so that what was read gets in; if it does not, it stays pending for the next batcher.
        """
        delay = RETRY_MIN_S
        stop_deadline: float | None = None
        while True:
            try:
                result = await action()
            except (RedisError, OSError, TimeoutError, ClickHouseError) as exc:
                # ClickHouse away, the table detached or read-only, Redis gone: all pass. Rows
                # ClickHouse refuses (DataError) never get here: insert_new_clicks takes them.
                kind = type(exc).__name__
                self.metrics.failures.labels(kind).inc()
                if self.stats.failing_since is None:
                    self.stats.failing_since = time.monotonic()
                    log.warning("could not %s (%s: %s); retrying with backoff", what, kind,
                                str(exc)[:300])
                await self._update_lag_quietly()
            else:
                if self.stats.failing_since is not None:
                    log.info("%s works again after %.1f s", what,
                             time.monotonic() - self.stats.failing_since)
                    self.stats.failing_since = None
                return result
            if self.stopping:
                if until_stopped:
                    return None
                stop_deadline = stop_deadline or time.monotonic() + STOP_DEADLINE_S
                if time.monotonic() >= stop_deadline:
                    log.warning("stopping with a batch not inserted: it stays pending")
                    return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay * random.uniform(0.8, 1.2))
            if self.stopping and until_stopped:
                return None
            delay = min(delay * 2, RETRY_MAX_S)

    async def _update_lag_quietly(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            for group in await self._redis.xinfo_groups(self.stream):
                if _text(group["name"]) == self.group:
                    self.stats.lag = int(group["pending"]) + int(group.get("lag") or 0)
                    self.metrics.lag.set(self.stats.lag)


@dataclass(slots=True)
class _Sorted:
    fresh: list[_Entry]  # valid events, each key (click_id, event_id) once
    repeated: list[_Entry]  # a key already earlier in the batch, or trimmed while pending
    bad: list[_Entry]  # not valid events
    size: int


def _sort(batch: list[_Entry], sink: Sink) -> _Sorted:
    """Check, enrich and encode every entry of a batch (CPU only: run in a thread)."""
    fresh: dict[str, _Entry] = {}
    repeated: list[_Entry] = []
    bad: list[_Entry] = []
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
    return _Sorted(list(fresh.values()), repeated, bad, len(batch))


def _unparsed(response: Any, **_options: Any) -> Any:
    return response


def _payload(fields: Any) -> Any:
    """Field `e` of an entry, whether its fields come as Redis sends them (a flat list of
    names and values) or parsed into a dict; None when it has none."""
    if fields is None:
        return None
    if isinstance(fields, list):
        for index in range(0, len(fields) - 1, 2):
            if fields[index] in (b"e", "e"):
                return fields[index + 1]
        return None
    return fields.get(b"e", fields.get("e"))


def _stream_entries(reply: Any) -> list[tuple[Any, Any]]:
    """The entries of an unparsed XREADGROUP reply for our one stream: a map of streams to
    entries in RESP3, a list of (stream, entries) pairs in RESP2."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [entry for entries in reply.values() for entry in entries]
    return [entry for _, entries in reply for entry in entries]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"
