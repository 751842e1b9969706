"""Click events and their group commit to the Redis stream, with the disk spool behind it.

A request appends its event and waits for its batch: one pipelined XADD round trip acknowledges
every click that arrived while the previous batch was in flight. When Redis fails or is slow,
the batch is fsync'd to the spool instead and the writer stays on the spool until a probe finds
Redis again; then the spool is replayed, skipping events the stream already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson
from redis.asyncio import Redis

from edge.hotpath.metrics import EdgeMetrics
from edge.hotpath.spool import Spool
from edge.shutdown import cancel_within
from edge.streams import APPEND_SCRIPT, CLICK_STREAM, read_between

log = logging.getLogger("invite.clicks")

# Group commit: a batch goes to Redis as soon as the previous one is acknowledged, or when it
# holds this many clicks; a request waits for its batch's acknowledgement.
CLICK_BATCH_MAX = 512
# Redis slower than this for one batch: the batch goes to the disk spool instead, and the edge
# stays on the spool until a probe finds Redis healthy again.
CLICK_WRITE_TIMEOUT_S = 0.25
REDIS_PROBE_INTERVAL_S = 0.5
# A replayed event may have reached Redis before the failure that sent it to the spool; look for
# it this far around the spooled events' own timestamps (covers clock skew with the server).
REPLAY_DEDUP_MARGIN_MS = 30_000
REPLAY_CHUNK = 1000
REPLAY_LOOKUP_PAGE = 5000


class ClickWriter:
    """Group commit of packed events to the stream; the spool when Redis cannot take them."""

    def __init__(
        self,
        redis: Redis,
        spool: Spool,
        metrics: EdgeMetrics,
        *,
        stream: str = CLICK_STREAM,
        batch_max: int = CLICK_BATCH_MAX,
    ) -> None:
        self._redis = redis
        self._spool = spool
        self._metrics = metrics
        self._stream = stream
        self._batch_max = batch_max
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._in_flight: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._redis_up = True
        self._tasks: list[asyncio.Task[None]] = []
        self._attention = asyncio.Event()
        self._spool_lock = asyncio.Lock()
        self._append_script = redis.register_script(APPEND_SCRIPT)
        self.spool_depth = 0

    @property
    def redis_up(self) -> bool:
        return self._redis_up

    async def start(self) -> None:
        # What earlier processes left behind counts until it is replayed.
        self._add_spool_depth(await asyncio.to_thread(self._spool.count_events))
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._flush_loop(), name="click-flush"),
            loop.create_task(self._recovery_loop(), name="click-recovery"),
        ]
        self._attention.set()  # replay anything a previous process left in the spool

    async def record(self, event: bytes) -> None:
        """Return once the event is acknowledged by Redis or fsync'd to the spool."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        self._idle.clear()
        self._wake.set()
        await future

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._batch_max]
                del self._pending[: self._batch_max]
                self._in_flight = batch
                await self._commit(batch)
                self._in_flight = []
            self._idle.set()

    async def _commit(self, batch: list[tuple[bytes, asyncio.Future[None]]]) -> None:
        events = [event for event, _ in batch]
        self._metrics.batch_size.observe(len(events))
        error: BaseException | None = None
        sent = self._redis_up
        if self._redis_up:
            started = time.perf_counter()
            try:
                await self._xadd(events)
                self._metrics.append_seconds.labels("redis").observe(
                    time.perf_counter() - started
                )
                _resolve(batch, None)
                return
            except Exception as exc:  # whatever failed, the spool takes the batch
                log.warning(
                    "redis did not take %d clicks (%s); writing to the spool until it is back",
                    len(events), type(exc).__name__,
                )
                self._set_redis_up(False)
        started = time.perf_counter()
        try:
            async with self._spool_lock:
                await asyncio.to_thread(self._spool.append, events, sent)
            self._add_spool_depth(len(events))
            self._metrics.spooled.inc(len(events))
            self._metrics.append_seconds.labels("spool").observe(time.perf_counter() - started)
        except OSError as exc:
            log.error("the click spool failed too (%s): %d clicks lost", exc, len(events))
            self._metrics.lost.inc(len(events))
            error = exc
        _resolve(batch, error)

    async def _xadd(self, events: list[bytes]) -> None:
        # One script call per batch: cheaper to encode than a pipeline of XADDs, and a batch is
        # in the stream whole or not at all.
        await self._append_script(keys=[self._stream], args=events)

    def _set_redis_up(self, up: bool) -> None:
        self._redis_up = up
        self._metrics.redis_up.set(1 if up else 0)
        if not up:
            self._attention.set()

    async def _recovery_loop(self) -> None:
        """Woken when Redis fails (or at start): probe until it answers, then replay the spool."""
        while True:
            await self._attention.wait()
            self._attention.clear()
            while True:
                if not self._redis_up:
                    try:
                        await self._redis.ping()
                    except Exception:  # any failure means: not back yet
                        await asyncio.sleep(REDIS_PROBE_INTERVAL_S)
                        continue
                    log.info("redis is back; replaying the click spool")
                    self._set_redis_up(True)
                try:
                    await self.replay()
                    break
                except Exception as exc:  # the spool stays; retried on recovery
                    log.warning("spool replay stopped (%s); will retry", type(exc).__name__)
                    self._set_redis_up(False)

    async def replay(self) -> int:
        """Move every claimable spool segment into the stream, exactly once per click_id."""
        async with self._spool_lock:
            self._spool.rotate()
            segments = await asyncio.to_thread(lambda: list(self._spool.claim()))
        replayed = 0
        for index, segment in enumerate(segments):
            try:
                groups = await asyncio.to_thread(segment.groups)
                for sent, events in groups:
                    replayed += await self._replay_events(events, sent)
                await asyncio.to_thread(segment.remove)
            except BaseException:
                for rest in segments[index:]:
                    rest.release()
                raise
            self._add_spool_depth(-sum(len(events) for _, events in groups))
        if segments:
            log.info("replayed %d spooled clicks from %d segment(s)", replayed, len(segments))
        return replayed

    def _add_spool_depth(self, change: int) -> None:
        self.spool_depth = max(0, self.spool_depth + change)
        self._metrics.spool_depth.set(self.spool_depth)

    async def _replay_events(self, events: list[bytes], sent: bool) -> int:
        """XADD spooled events, skipping those a failed-but-sent batch already put in the stream."""
        if sent:
            events = await self._not_in_stream(events)
        for start in range(0, len(events), REPLAY_CHUNK):
            chunk = events[start : start + REPLAY_CHUNK]
            await self._xadd(chunk)
            self._metrics.replayed.inc(len(chunk))
            await asyncio.sleep(0)  # live redirects go first
        return len(events)

    async def _not_in_stream(self, events: list[bytes]) -> list[bytes]:
        parsed: list[tuple[str, int, bytes]] = []
        for start in range(0, len(events), REPLAY_CHUNK):
            for event in events[start : start + REPLAY_CHUNK]:
                try:
                    fields = orjson.loads(event)
                    parsed.append((str(fields["click_id"]), int(fields["ts"]), event))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    log.warning("skipping an unreadable spool line (%d bytes)", len(event))
            await asyncio.sleep(0)
        if not parsed:
            return []
        low = min(ts for _, ts, _ in parsed) - REPLAY_DEDUP_MARGIN_MS
        high = max(ts for _, ts, _ in parsed) + REPLAY_DEDUP_MARGIN_MS
        seen = await self._click_ids_in_stream(max(low, 0), high)
        fresh: list[bytes] = []
        for click_id, _, event in parsed:
            if click_id not in seen:
                seen.add(click_id)
                fresh.append(event)
        self._metrics.replay_duplicates.inc(len(parsed) - len(fresh))
        return fresh

    async def _click_ids_in_stream(self, low_ms: int, high_ms: int) -> set[str]:
        return {
            str(event["click_id"])
            async for _, event in read_between(
                self._redis, self._stream, low_ms, high_ms, page=REPLAY_LOOKUP_PAGE
            )
            if "click_id" in event
        }

    async def close(self, deadline_s: float) -> None:
        """Flush what is pending within the deadline; whatever is left goes to the spool."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), deadline_s)
        await cancel_within(self._tasks)
        # Past the deadline: whatever is still unacknowledged goes to the spool, never nowhere.
        left = [item for item in self._in_flight + self._pending if not item[1].done()]
        self._in_flight, self._pending = [], []
        if left:
            self._redis_up = False
            await self._commit(left)
        self._spool.rotate()


def _resolve(batch: list[tuple[bytes, asyncio.Future[None]]], error: BaseException | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
