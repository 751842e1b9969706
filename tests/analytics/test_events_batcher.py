"""Funnel events into `invite.events` exactly once, with batchers killed mid-batch and Redis
killed under the intake: the guarantees the clicks have."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from redis.asyncio import Redis

from analytics.batcher import Batcher
from analytics.clickhouse import open_clickhouse
from analytics.insert import InsertOutcome
from analytics.schema import migrate
from analytics.sinks import EVENTS
from edge.config import BatcherSettings
from edge.events.intake import EventIntake
from edge.events.model import check_events
from edge.streams import EVENT_STREAM
from tests.analytics.test_batcher import run_until
from tests.conftest import EdgeServer, RedisServer, wait_for

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
NOW = int(time.time() * 1000) - 60_000


def trades(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"eventId": f"{prefix}-{i}", "type": "trade", "ts": NOW + i, "userId": i % 97 + 1,
             "symbol": "EURUSD", "lots": "0.01", "commission": "0.1", "markup": "0"}
            for i in range(count)]


def submit(redis_url: str, events: list[dict[str, Any]]) -> None:
    async def go() -> None:
        client = Redis.from_url(redis_url)
        try:
            for start in range(0, len(events), 1000):
                await EventIntake(client).submit(check_events(events[start:start + 1000], "api"))
        finally:
            await client.aclose()
    asyncio.run(go())


def spawn(mode: str, redis_url: str, data_dir: Path, consumer: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.analytics.test_events_batcher", mode, redis_url,
         str(data_dir), consumer], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def test_no_event_is_lost_or_doubled_when_batchers_are_killed_mid_batch(
    redis_client: redis.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    submit(redis_server.url, trades("k", 3000))
    data_dir = tmp_path / "clickhouse"
    first = spawn("kill-after-insert", redis_server.url, data_dir, "first")
    _, err = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, err.decode()[-2000:]
    second = spawn("run", redis_server.url, data_dir, "second")

    def read_some() -> bool:
        groups = redis_client.xinfo_groups(EVENT_STREAM)
        return bool(groups) and int(groups[0]["entries-read"] or 0) >= 2000

    try:
        wait_for(read_some, timeout=60, what="the second batcher to read")
    finally:
        second.send_signal(signal.SIGKILL)
        second.communicate(timeout=30)
    third = spawn("drain", redis_server.url, data_dir, "third")
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0, err.decode()[-2000:]
    assert orjson.loads(out.decode().strip().splitlines()[-1]) == {"rows": 3000, "ids": 3000}


def test_every_accepted_event_survives_a_redis_kill_under_the_intake(
    edge_factory: Any, redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    edge: EdgeServer = edge_factory(INVITE_EVENTS_TOKEN="events-token-0123456789")
    accepted: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()

    def post() -> None:
        batch = 0
        with edge.client(headers={"Authorization": "Bearer events-token-0123456789"}) as client:
            while not stop.is_set():
                events = trades(f"b{batch}", 50)
                try:
                    response = client.post("/api/events", json={"events": events})
                except httpx.HTTPError:
                    continue
                statuses.append(response.status_code)
                if response.status_code == 200:
                    accepted.extend(e["eventId"] for e in events)
                    batch += 1

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    wait_for(lambda: len(accepted) >= 500, timeout=30, what="events before the kill")
    redis_server.kill()
    time.sleep(0.5)
    redis_server.start()
    before = len(accepted)
    wait_for(lambda: len(accepted) >= before + 500, timeout=60, what="events after")
    stop.set()
    thread.join(timeout=30)
    in_stream = {orjson.loads(f[b"e"])["event_id"] for _, f in redis_server.client().xrange(
        EVENT_STREAM)}
    assert set(accepted) <= in_stream
    assert set(statuses) <= {200, 503}  # Redis away: 503, never a 500


class _KilledAfterInsert(Batcher):
    def _insert_new(self, entries: Any) -> InsertOutcome:
        outcome = super()._insert_new(entries)
        if outcome.inserted:
            os.kill(os.getpid(), signal.SIGKILL)
        return outcome


async def _worker(mode: str, redis_url: str, data_dir: str, consumer: str) -> None:
    clickhouse = open_clickhouse(f"chdb://{data_dir}")
    migrate(clickhouse)
    kind = _KilledAfterInsert if mode == "kill-after-insert" else Batcher
    batcher = kind(Redis.from_url(redis_url), clickhouse, BatcherSettings(
        consumer=consumer, batch_rows=400, flush_ms=50, claim_idle_ms=300, insert_lock_ttl_s=0.5,
    ), EVENTS)

    async def drained() -> bool:
        for info in await batcher._redis.xinfo_groups(EVENT_STREAM):
            return int(info["pending"]) == 0 and int(info["lag"] or 0) == 0
        return False

    if mode == "drain":
        await run_until(batcher, drained, within_s=90)
        row = clickhouse.query("SELECT count(), uniqExact(event_id) FROM invite.events"
                               ).result_rows[0]
        print(orjson.dumps({"rows": int(row[0]), "ids": int(row[1])}).decode())
    else:
        await batcher.run()


if __name__ == "__main__":
    asyncio.run(_worker(*sys.argv[1:5]))
