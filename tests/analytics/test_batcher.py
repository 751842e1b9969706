"""The batcher against a real redis-server and embedded ClickHouse: every click exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from redis.asyncio import Redis

from analytics.batcher import Batcher
from analytics.batcher_metrics import BatcherMetrics
from analytics.clickhouse import Client, open_clickhouse
from analytics.insert import InsertOutcome, dedup_windows
from analytics.pipeline import run_batcher
from analytics.schema import migrate
from edge.config import BatcherSettings, Settings
from edge.logs import configure_logging
from edge.registry.destinations import DestinationPolicy
from edge.registry.edits import PartnerEdit
from edge.registry.partners import PartnerRegistry
from tests.analytics.conftest import (
    STREAM,
    add_events,
    assert_exactly_once,
    click_event,
    counts,
)
from tests.conftest import ADMIN_TOKEN, HOOK_TOKEN, SECRET, RedisServer, wait_for

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]


def make_batcher(
    redis_url: str, clickhouse: Client, metrics: BatcherMetrics | None = None, **options: Any
) -> Batcher:
    """A batcher with test-sized timings; `options` are BatcherSettings fields."""
    settings = BatcherSettings(**{
        "consumer": "test", "flush_ms": 50, "claim_idle_ms": 300, **options,
    })
    return Batcher(Redis.from_url(redis_url), clickhouse, settings, metrics=metrics)


async def group_state(client: Redis, group: str = "batcher") -> dict[str, int]:
    for info in await client.xinfo_groups(STREAM):
        if info["name"] in (group, group.encode()):
            return {"pending": int(info["pending"]), "lag": int(info["lag"] or 0)}
    return {"pending": -1, "lag": -1}


async def drained(batcher: Batcher) -> bool:
    state = await group_state(batcher._redis)
    return state == {"pending": 0, "lag": 0}


async def run_until(
    batcher: Batcher, condition: Callable[[], Awaitable[bool]], within_s: float = 15.0
) -> None:
    """Run the batcher until the condition holds, then stop it and wait for it to finish."""
    task = asyncio.create_task(batcher.run())
    deadline = time.monotonic() + within_s
    try:
        while not await condition():
            if task.done():
                task.result()
                raise AssertionError("the batcher stopped by itself")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within_s}s; stats {batcher.stats}")
            await asyncio.sleep(0.02)
    finally:
        batcher.stop()
        try:
            await asyncio.wait_for(task, 20)
        finally:
            await batcher._redis.aclose()  # the test's client, closed on the loop that used it


def drain(redis_url: str, clickhouse: Client, **options: Any) -> Batcher:
    batcher = make_batcher(redis_url, clickhouse, **options)
    asyncio.run(run_until(batcher, lambda: drained(batcher)))
    return batcher


def test_every_event_becomes_one_row_and_is_acknowledged(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    events = [click_event(partner_id=f"p{i % 7}") for i in range(500)]
    add_events(redis_client, events)

    batcher = drain(redis_server.url, clickhouse)

    assert_exactly_once(clickhouse, 500)
    assert batcher.stats.inserted == 500
    stored = clickhouse.query(
        "SELECT toString(click_id), device, os, browser, referer_host, is_human "
        "FROM invite.clicks WHERE click_id = %(click_id)s",
        parameters={"click_id": events[0]["click_id"]},
    ).result_rows
    assert stored == [(events[0]["click_id"], "desktop", "Windows", "Chrome", "google.com", 1)]
    assert redis_client.xpending(STREAM, "batcher")["pending"] == 0


def test_replayed_click_ids_are_inserted_once(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    events = [click_event() for _ in range(200)]
    add_events(redis_client, events)
    add_events(redis_client, events[:50])  # a spool replay in the same batch
    drain(redis_server.url, clickhouse)
    add_events(redis_client, events[100:])  # and one arriving after they were inserted

    batcher = drain(redis_server.url, clickhouse)

    assert_exactly_once(clickhouse, 200)
    assert batcher.stats.duplicates == 100
    assert batcher.stats.inserted == 0


def test_insert_failures_keep_events_pending_until_clickhouse_takes_them(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    add_events(redis_client, [click_event() for _ in range(300)])
    metrics = BatcherMetrics()

    def failures() -> float:
        sample = "invite_batcher_flush_failures_total"
        return metrics.registry.get_sample_value(sample, {"error": "DatabaseError"}) or 0.0

    async def scenario() -> None:
        # The table itself away, then one view's table: neither may lose or double a click.
        for table in ("clicks", "clicks_downline_hourly"):
            clickhouse.command(f"DETACH TABLE invite.{table}")
            add_events(redis_client, [click_event() for _ in range(100)])
            batcher = make_batcher(redis_server.url, clickhouse, metrics=metrics)
            task = asyncio.create_task(batcher.run())
            before, deadline = failures(), time.monotonic() + 10
            while failures() < before + 2:
                assert time.monotonic() < deadline, "the insert never failed"
                await asyncio.sleep(0.02)
            state = await group_state(batcher._redis)
            assert state["pending"] > 0
            assert metrics.registry.get_sample_value("invite_batcher_lag") == (
                state["pending"] + state["lag"]
            )
            clickhouse.command(f"ATTACH TABLE invite.{table}")
            while not await drained(batcher):
                assert not task.done()
                await asyncio.sleep(0.02)
            batcher.stop()
            await task
            await batcher._redis.aclose()

    asyncio.run(scenario())

    assert_exactly_once(clickhouse, 500)


def test_entries_of_a_dead_consumer_are_taken_over_once_idle(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    add_events(redis_client, [click_event() for _ in range(300)])
    redis_client.xgroup_create(STREAM, "batcher", id="0")
    # A consumer that read 120 entries and died before inserting or acknowledging them.
    redis_client.xreadgroup("batcher", "dead", {STREAM: ">"}, count=120)

    batcher = drain(redis_server.url, clickhouse, claim_idle_ms=200)

    assert_exactly_once(clickhouse, 300)
    assert batcher.metrics.registry.get_sample_value("invite_batcher_claimed_total") == 120
    dead = {c["name"]: c["pending"] for c in redis_client.xinfo_consumers(STREAM, "batcher")}
    assert dead[b"dead"] == 0


def test_own_pending_entries_are_read_first_and_deleted_ones_acknowledged(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    add_events(redis_client, [click_event() for _ in range(10)])
    redis_client.xgroup_create(STREAM, "batcher", id="0")
    # The same consumer name before a restart: it had read these and not acknowledged them.
    read = redis_client.xreadgroup("batcher", "test", {STREAM: ">"}, count=10)[0][1]
    redis_client.xdel(STREAM, *[entry_id for entry_id, _ in read[:3]])
    add_events(redis_client, [click_event() for _ in range(5)])

    batcher = drain(redis_server.url, clickhouse, claim_idle_ms=60_000)

    assert_exactly_once(clickhouse, 12)
    assert batcher.stats.duplicates == 3  # the deleted entries: acknowledged, nothing to insert


def test_poison_entries_go_to_the_dead_letter_stream_after_max_deliveries(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    good = [click_event() for _ in range(20)]
    add_events(redis_client, good[:10])
    redis_client.xadd(STREAM, {"e": b"{not json"})
    redis_client.xadd(STREAM, {"other": b"x"})
    add_events(redis_client, [
        click_event(click_id=None),
        click_event(ts="yesterday"),
        click_event(kind="robot"),
        click_event(ancestors="master"),
    ])
    add_events(redis_client, good[10:])

    batcher = drain(redis_server.url, clickhouse, max_deliveries=3, claim_idle_ms=100)

    assert_exactly_once(clickhouse, 20)
    dead = redis_client.xrange("invite:clicks:dead")
    reasons = sorted(fields[b"reason"].decode() for _, fields in dead)
    assert len(reasons) == 6
    assert any("not JSON" in r for r in reasons)
    assert any("no field 'e'" in r for r in reasons)
    assert any(r.startswith("click_id is missing") for r in reasons)
    assert any(r.startswith("ts 'yesterday'") for r in reasons)
    assert any(r.startswith("kind 'robot'") for r in reasons)
    assert any(r.startswith("ancestors") for r in reasons)
    assert fields_of(dead, "{not json") == {"stream": STREAM}
    assert batcher.stats.dead_letters == 6
    assert batcher.metrics.registry.get_sample_value("invite_batcher_dead_letters_total") == 6


def test_an_entry_clickhouse_refuses_goes_to_the_dead_letter_stream_with_its_reason(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    good = [click_event() for _ in range(30)]
    add_events(redis_client, good[:15])
    # Python reads the last of two equal keys and passes it; ClickHouse refuses the row.
    twice = orjson.dumps(click_event())[:-1] + b',"kind":"person"}'
    redis_client.xadd(STREAM, {"e": twice})
    add_events(redis_client, good[15:])

    batcher = drain(redis_server.url, clickhouse)

    assert_exactly_once(clickhouse, 30)
    dead = redis_client.xrange("invite:clicks:dead")
    assert [fields[b"e"] for _, fields in dead] == [twice]
    assert "Duplicate field" in dead[0][1][b"reason"].decode()
    assert batcher.stats.dead_letters == 1
    assert redis_client.xpending(STREAM, "batcher")["pending"] == 0


def fields_of(dead: list[Any], raw: str) -> dict[str, str]:
    for _, fields in dead:
        if fields[b"e"].decode() == raw:
            return {"stream": fields[b"stream"].decode()}
    return {}


def test_trimming_never_drops_entries_a_group_still_needs(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    add_events(redis_client, [click_event() for _ in range(300)])
    redis_client.xgroup_create(STREAM, "batcher", id="0")
    redis_client.xgroup_create(STREAM, "audit", id="0")  # another reader, behind
    batcher = make_batcher(redis_server.url, clickhouse, claim_idle_ms=60_000)
    asyncio.run(run_until(batcher, lambda: drained(batcher)))
    assert redis_client.xlen(STREAM) == 300  # all acknowledged by us, none read by audit

    add_events(redis_client, [click_event() for _ in range(300)])
    # A consumer that read one entry and has not acknowledged it (not idle long enough to claim).
    slow_id = redis_client.xreadgroup("batcher", "slow", {STREAM: ">"}, count=1)[0][1][0][0]
    redis_client.xgroup_destroy(STREAM, "audit")

    async def trimmed() -> bool:
        return await drained_but_one(batcher) and redis_client.xlen(STREAM) < 600

    batcher = make_batcher(redis_server.url, clickhouse, claim_idle_ms=60_000)
    asyncio.run(run_until(batcher, trimmed))

    assert redis_client.xrange(STREAM, slow_id, slow_id)  # unacknowledged: kept
    assert redis_client.xlen(STREAM) >= 300  # nothing after it was trimmed either
    assert counts(clickhouse)["rows"] == 599


async def drained_but_one(batcher: Batcher) -> bool:
    return await group_state(batcher._redis) == {"pending": 1, "lag": 0}


def test_a_batch_is_flushed_when_full_before_its_interval(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    add_events(redis_client, [click_event() for _ in range(250)])
    batcher = make_batcher(
        redis_server.url, clickhouse, batch_rows=100, flush_ms=30_000, claim_idle_ms=60_000
    )

    async def two_batches_in() -> bool:
        return batcher.stats.inserted >= 200

    started = time.monotonic()
    asyncio.run(run_until(batcher, two_batches_in, within_s=10))

    assert time.monotonic() - started < 10
    assert batcher.stats.batches >= 2
    assert_exactly_once(clickhouse, 250)  # stop() flushed the last, partial batch


def test_stop_flushes_what_was_read(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    batcher = make_batcher(redis_server.url, clickhouse, flush_ms=30_000, claim_idle_ms=60_000)

    async def scenario() -> None:
        task = asyncio.create_task(batcher.run())
        await asyncio.sleep(0.2)
        add_events(redis_client, [click_event() for _ in range(50)])
        deadline = time.monotonic() + 10
        while (await group_state(batcher._redis))["pending"] < 50:
            assert time.monotonic() < deadline, "the batcher did not read the events"
            await asyncio.sleep(0.02)
        assert counts(clickhouse)["rows"] == 0  # read, waiting for its interval
        started = time.monotonic()
        batcher.stop()
        await asyncio.wait_for(task, 5)
        assert time.monotonic() - started < 5
        await batcher._redis.aclose()

    asyncio.run(scenario())

    assert_exactly_once(clickhouse, 50)
    assert redis_client.xpending(STREAM, "batcher")["pending"] == 0


def test_dedup_windows_split_a_batch_at_its_gaps() -> None:
    assert dedup_windows([5_000, 1_000, 1_500, 90_000]) == [
        (1_000, 1_500), (5_000, 5_000), (90_000, 90_000),
    ]
    many = dedup_windows([i * 10_000 for i in range(1000)])
    assert len(many) <= 32
    assert many[0][0] == 0
    assert many[-1][1] == 9_990_000


# --- a batcher in its own process, killed with SIGKILL ------------------------------------------


def spawn(mode: str, redis_url: str, data_dir: Path, consumer: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.analytics.test_batcher", mode, redis_url, str(data_dir),
         consumer],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def test_no_click_is_lost_or_doubled_when_batchers_are_killed_mid_batch(
    redis_client: redis.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    events = [click_event(partner_id=f"p{i % 11}") for i in range(3000)]
    add_events(redis_client, events[:1500])
    add_events(redis_client, events[:200])  # replayed by an edge's spool
    add_events(redis_client, events[1500:])
    data_dir = tmp_path / "clickhouse"  # this test's chDB lives in the subprocesses only

    # 1: killed right after its first insert returned, before XACK.
    first = spawn("kill-after-insert", redis_server.url, data_dir, "first")
    _, err = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert redis_client.xpending(STREAM, "batcher")["pending"] > 0

    # 2: killed from outside at whatever point it has reached.
    second = spawn("run", redis_server.url, data_dir, "second")

    def read_some() -> bool:
        groups = redis_client.xinfo_groups(STREAM)
        return bool(groups) and int(groups[0]["entries-read"] or 0) >= 2300

    try:
        wait_for(read_some, timeout=60, what="the second batcher to read")
    finally:
        second.send_signal(signal.SIGKILL)
        second.communicate(timeout=30)
    assert second.returncode == -signal.SIGKILL

    # 3: takes over what both left pending and finishes the stream.
    third = spawn("drain", redis_server.url, data_dir, "third")
    try:
        out, err = third.communicate(timeout=90)
    finally:
        if third.poll() is None:
            third.kill()
            third.communicate()
    assert third.returncode == 0, err.decode()[-2000:]
    found = json.loads(out.decode().strip().splitlines()[-1])

    assert found["rows"] == found["click_ids"] == 3000, found
    assert found["clicks_totals_hourly"] == found["clicks_partner_daily"] == 3000, found
    assert found["clicks_downline_hourly"] == found["downline_rows"] == 3 * 3000, found
    assert found["clicks_breakdown_daily"] == 5 * 3000, found
    assert redis_client.xpending(STREAM, "batcher")["pending"] == 0


def test_invite_batcher_drains_the_stream_syncs_partners_and_exits_on_sigterm(
    redis_client: redis.Redis, redis_server: RedisServer, tmp_path: Path
) -> None:
    async def register_partners() -> None:
        client = Redis.from_url(redis_server.url, decode_responses=True)
        registry = PartnerRegistry(client, SECRET, DestinationPolicy(["register.broker.test"]))
        await registry.upsert("master", PartnerEdit.from_json({"type": "ib"}))
        await registry.upsert("sub-1", PartnerEdit.from_json({"parentPartnerId": "master"}))
        await client.aclose()

    asyncio.run(register_partners())
    add_events(redis_client, [click_event(partner_id="sub-1", ancestors=["master"])
                              for _ in range(200)])
    env = {**os.environ, "INVITE_DATA_DIR": str(tmp_path), "INVITE_REDIS_URL": redis_server.url,
           "INVITE_SECRET": SECRET, "INVITE_ADMIN_TOKEN": ADMIN_TOKEN,
           "INVITE_HOOK_TOKEN": HOOK_TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.analytics.test_batcher", "serve"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )

    def drained_by_it() -> bool:
        groups = redis_client.xinfo_groups(STREAM)
        return bool(groups) and groups[0]["pending"] == 0 and groups[0]["lag"] == 0

    try:
        wait_for(drained_by_it, timeout=60, what="the batcher to drain the stream")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)

    assert process.returncode == 0, err.decode()[-2000:]
    found = json.loads(out.decode().strip().splitlines()[-1])
    assert found["rows"] == found["clicks_totals_hourly"] == 200, found
    assert found["partners"] == 2, found
    assert "clicks inserted 200" in err.decode()


class _KilledAfterInsert(Batcher):
    """Dies the way a crash between a successful insert and its XACK would."""

    def _insert_new(self, entries: Any) -> InsertOutcome:
        outcome = super()._insert_new(entries)
        if outcome.inserted:
            os.kill(os.getpid(), signal.SIGKILL)
        return outcome


async def _serve() -> None:
    settings = Settings.from_env()
    configure_logging("text")
    settings = replace(settings, batcher=BatcherSettings(
        consumer="serve", flush_ms=50, claim_idle_ms=300
    ))
    stats = await run_batcher(settings, progress_interval_s=0.5)
    assert stats.inserted >= 0
    clickhouse = open_clickhouse(settings.analytics.clickhouse_url)
    found: dict[str, int] = counts(clickhouse)
    found["partners"] = int(clickhouse.command(  # type: ignore[call-overload]
        "SELECT count() FROM invite.partners FINAL"
    ))
    print(orjson.dumps(found).decode())


async def _worker(mode: str, redis_url: str, data_dir: str, consumer: str) -> None:
    clickhouse = open_clickhouse(f"chdb://{data_dir}")
    migrate(clickhouse)
    batcher_class = _KilledAfterInsert if mode == "kill-after-insert" else Batcher
    batcher = batcher_class(
        Redis.from_url(redis_url), clickhouse, BatcherSettings(
            consumer=consumer, batch_rows=400, flush_ms=50, claim_idle_ms=300,
            insert_lock_ttl_s=0.5,
        ),
    )
    if mode == "drain":
        await run_until(batcher, lambda: drained(batcher), within_s=60)
        print(orjson.dumps(counts(clickhouse)).decode())
    else:
        await batcher.run()


if __name__ == "__main__":
    asyncio.run(_serve() if sys.argv[1] == "serve" else _worker(*sys.argv[1:5]))
