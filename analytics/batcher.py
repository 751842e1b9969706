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
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import LockNotOwnedError, RedisError, ResponseError

from analytics.batcher_metrics import BatcherMetrics, BatcherStats
from analytics.insert import InsertOutcome
from analytics.sinks import CLICKS, Entry, Sink, Sorted, sort_entries
from edge.backoff import RetryPolicy
from edge.config import BatcherSettings
from edge.redis_client import as_text
from edge.streams import entry_payload, id_key, next_id, unparsed_entries

log = logging.getLogger("invite.batcher")

GROUP = "batcher"
READ_COUNT = 10_000
# A blocking read waits at most this long, so stop() is seen within it whatever the flush
# interval; the Redis client's socket timeout must be longer.
READ_BLOCK_MAX_MS = 1000
# ClickHouse or Redis away: tried again after 0.25 s, then up to 30 s apart (full jitter).
RETRY_POLICY = RetryPolicy(base_s=0.25, max_s=30.0)
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


class Batcher:
    """Consumes one sink's stream in the consumer group `batcher`; `run()` until `stop()`.

    `redis` may decode responses or not; its socket timeout must exceed READ_BLOCK_MAX_MS.
    Give the batchers a client of their own: its XREADGROUP replies are switched to Redis's
    own shape (nested lists), as turning each entry into a dict cost more than reading it.
    `clickhouse` is used from a worker thread, one call at a time.
    """

    def __init__(
        self,
        redis: Redis,
        clickhouse: Client,
        settings: BatcherSettings,
        sink: Sink = CLICKS,
        *,
        metrics: BatcherMetrics | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.sink = sink
        self._redis = redis
        redis.set_response_callback("XREADGROUP", _unparsed)
        self._ack_script = redis.register_script(ACK_SCRIPT)
        self._clickhouse = clickhouse
        self.consumer = settings.consumer
        self.stream = sink.stream
        self.group = GROUP
        self._batch_max = min(settings.batch_rows, sink.max_batch_rows or settings.batch_rows)
        self._flush_interval = settings.flush_interval_s
        self._max_deliveries = settings.max_deliveries
        self._claim_idle_ms = settings.claim_idle_ms
        self._dead_letters = sink.dead_letter_stream
        self.metrics = metrics or BatcherMetrics(registry, sink.metrics_prefix)
        self._lock_key = sink.insert_lock_key
        self._lock_ttl = settings.insert_lock_ttl_s
        self.stats = BatcherStats()
        self._stopping = asyncio.Event()
        self._own_cursor: str | None = "0"  # our own pending entries are read before new ones
        self._claimed: list[Entry] = []
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
                    ready = await asyncio.to_thread(sort_entries, batch, self.sink)
                    if committing is not None:
                        await committing
                    committing = asyncio.create_task(self._commit(ready))
                if committing is None or committing.done():
                    await self._retrying("maintain the stream", self._maintain)
        finally:
            if committing is not None:
                await committing

    async def _collect(self) -> list[Entry]:
        """Up to batch_max_rows entries: claimed first, then our own pending, then new ones.

        Returns when full, flush_interval after its first entry, when the stream stays quiet
        for flush_interval, or on stop.
        """
        batch: list[Entry] = []
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

    async def _read(self, start: str, count: int, block_ms: int | None) -> list[Entry]:
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
            Entry(as_text(entry_id), fields is not None, entry_payload(fields))
            for entry_id, fields in unparsed_entries(reply)
            if entry_id is not None
        ]

    async def _commit(self, ready: Sorted) -> None:
        """Insert what is new, acknowledge the batch, dead-letter what is hopeless."""
        self.metrics.batch_rows.observe(ready.size)
        await self._retrying(
            f"insert {self.sink.name}", lambda: self._insert_and_ack(ready.fresh, ready.repeated),
            until_stopped=False,
        )
        if ready.bad:
            await self._retrying("handle bad entries", lambda: self._handle_bad(ready.bad))
        self.stats.batches += 1

    async def _insert_and_ack(self, entries: list[Entry], also_ack: list[Entry]) -> None:
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

    def _insert_new(self, entries: list[Entry]) -> InsertOutcome:
        """In a worker thread: the entries not in the table yet, inserted."""
        return self.sink.insert(
            self._clickhouse, [entry.key for entry in entries], [entry.ts for entry in entries],
            [entry.line for entry in entries], [entry.entry_id for entry in entries],
            token_prefix=self.stream,
        )

    async def _handle_bad(self, bad: list[Entry]) -> None:
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

    async def _dead_letter(self, entry: Entry, reason: str) -> None:
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
            name = as_text(group["name"])
            if int(group["pending"]):
                summary = await self._redis.xpending(self.stream, name)
                oldest = as_text(summary["min"])
            else:
                oldest = next_id(as_text(group["last-delivered-id"]))
            floor = oldest if floor is None or id_key(oldest) < id_key(floor) else floor
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
            cursor = as_text(reply[0])
            claimed = [
                Entry(as_text(i), fields is not None, entry_payload(fields))
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
        failures = 0
        stop_deadline: float | None = None
        while True:
            try:
                result = await action()
            except (RedisError, OSError, TimeoutError, ClickHouseError) as exc:
                # ClickHouse away, the table detached or read-only, Redis gone: all pass. Rows
                # ClickHouse refuses (DataError) never get here: insert_new_clicks takes them.
                kind = type(exc).__name__
                failures += 1
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
                await asyncio.wait_for(self._stopping.wait(), RETRY_POLICY.delay(failures))
            if self.stopping and until_stopped:
                return None

    async def _update_lag_quietly(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            for group in await self._redis.xinfo_groups(self.stream):
                if as_text(group["name"]) == self.group:
                    self.stats.lag = int(group["pending"]) + int(group.get("lag") or 0)
                    self.metrics.lag.set(self.stats.lag)


def _unparsed(response: Any, **_options: Any) -> Any:
    return response
