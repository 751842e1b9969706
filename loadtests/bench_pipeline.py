"""`make bench-pipeline`: the batcher's events/s beside a raw insert, and freshness.

Everything in one process, as `invite run` has it: a private redis-server, embedded ClickHouse
(chDB) in a temporary directory, the batcher on the event loop.

1. raw insert: the already-enriched rows of N events into `invite.clicks` (its views included)
   in batches of 50k, the ceiling for the batcher: once as the lines the batcher sends
   (`clicks_ingest`, prepared beforehand, the batcher's insert settings), once through
   clickhouse-connect's column insert (native format, encoded while timed) for comparison;
2. batcher: the same N events XADDed first, then one Batcher drains the stream (read, parse,
   enrich with a cold UA cache, duplicate check, insert, XACK, trim), with the garbage
   collector tuned as `invite batcher` tunes it;
3. freshness: events XADDed at a steady rate (5k/s) while the batcher runs; for each, the time
   from its XADD's reply (the click answered) to the first `count()` on `clicks` that includes it.

The dashboard's questions on 10M clicks are `make bench-queries`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from analytics.batcher import Batcher
from analytics.clickhouse import Client, open_clickhouse
from analytics.enrich import CLICK_COLUMNS, clear_caches, click_line, click_row
from analytics.insert import CLICKS_INGEST, INSERT_SETTINGS
from analytics.schema import CLICK_VIEWS, migrate
from analytics.sinks import sort_entries
from edge.config import BatcherSettings
from edge.gc_tuning import tune_gc
from edge.streams import CLICK_STREAM
from loadtests.processes import BenchRedis, Children, stopped_on_exit

PARTNERS = 5000
DISTINCT_UA_SHARE = 0.02
BIG_IB = "ib-0"
_UA_TEMPLATES = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{a}.0.{b}.{c} Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{a} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.{b} Mobile/15E{c} Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S9{a}B Build/UP1A.{b}.{c}) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_{a}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{b}.{c} Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 13; Pixel {a}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.{b}.{c} Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/{a}.0.0.{b};]",
    "Mozilla/5.0 (compatible; Googlebot/2.{a}; +http://www.google.com/bot.html)",
)
_REFERERS = ("", "https://www.google.com/", "https://t.co/x", "https://www.facebook.com/",
             "android-app://org.telegram.messenger/", "https://www.youtube.com/")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def partner_tree(rng: random.Random) -> list[tuple[str, list[str]]]:
    """PARTNERS partners in trees up to four levels deep; ib-0 heads a tenth of them."""
    partners: list[tuple[str, list[str]]] = [(f"ib-{i}", []) for i in range(50)]
    while len(partners) < PARTNERS:
        parent, ancestors = partners[0] if rng.random() < 0.1 else rng.choice(partners)
        if len(ancestors) < 3:
            partners.append((f"p-{len(partners)}", [*ancestors, parent]))
    return partners


def user_agents(rng: random.Random, count: int) -> list[str]:
    """`count` user agents, DISTINCT_UA_SHARE of them distinct, the popular ones repeated most."""
    distinct = [
        rng.choice(_UA_TEMPLATES).format(a=rng.randint(1, 99), b=rng.randint(0, 9999),
                                          c=rng.randint(0, 999))
        for _ in range(max(1, int(count * DISTINCT_UA_SHARE)))
    ]
    first_use = list(distinct)  # every distinct UA appears at least once
    weights = [1 / (rank + 1) for rank in range(len(distinct))]
    repeats = rng.choices(distinct, weights, k=count - len(first_use))
    mixed = first_use + repeats
    rng.shuffle(mixed)
    return mixed


def events(count: int, seed: int, start_ms: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    tree = partner_tree(rng)
    agents = user_agents(rng, count)
    result = []
    for index in range(count):
        partner_id, ancestors = rng.choice(tree)
        click_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        result.append({
            "click_id": click_id, "ts": start_ms + index // 10, "code": "dadMUv6",
            "kind": "person" if rng.random() < 0.85 else "preview", "outcome": "credited",
            "partner_id": partner_id, "ancestors": ancestors, "campaign": f"c{rng.randint(0, 9)}",
            "sub_id": "", "destination": "https://register.broker.test/signup",
            "ip_hash": f"{rng.getrandbits(128):032x}", "ip_prefix": "203.0.113.0/24",
            "user_agent": agents[index], "referer": rng.choice(_REFERERS),
            "accept_language": "en-GB,en;q=0.9", "country": rng.choice(("DE", "GB", "CY", "AE")),
            "first_click": True, "visitor_id": click_id, "method": "GET",
        })
    return result


def count_clicks(clickhouse: Client) -> int:
    return int(str(clickhouse.command("SELECT count() FROM invite.clicks")))


def truncate(clickhouse: Client) -> None:
    for table in ("clicks", *(view.table for view in CLICK_VIEWS)):
        clickhouse.command(f"TRUNCATE TABLE invite.{table}")


def raw_insert_lines(clickhouse: Client, lines: list[bytes], batch_rows: int) -> float:
    """Rows/s inserting encoded rows the way the batcher does, without reading or checking."""
    started = time.perf_counter()
    for start in range(0, len(lines), batch_rows):
        body = b"\n".join(lines[start : start + batch_rows])
        clickhouse.raw_insert(
            f"invite.{CLICKS_INGEST.name}", None, body, fmt=CLICKS_INGEST.fmt, settings={
                **INSERT_SETTINGS, **CLICKS_INGEST.settings,
                "insert_deduplication_token": f"lines-{start}",
            },
        )
    return len(lines) / (time.perf_counter() - started)


def raw_insert_native(clickhouse: Client, rows: list[list[Any]], batch_rows: int) -> float:
    """Rows/s through clickhouse-connect's column insert (native format, encoded in Python)."""
    names = [name for name, _ in CLICK_COLUMNS]
    types = [type_name for _, type_name in CLICK_COLUMNS]
    started = time.perf_counter()
    for start in range(0, len(rows), batch_rows):
        chunk = rows[start : start + batch_rows]
        clickhouse.insert(
            "clicks", [list(c) for c in zip(*chunk, strict=True)], database="invite",
            column_names=names, column_type_names=types, column_oriented=True,
            settings={"insert_deduplication_token": f"raw-{start}"},
        )
    return len(rows) / (time.perf_counter() - started)


async def xadd_all(redis: Redis, payloads: list[bytes]) -> None:
    for start in range(0, len(payloads), 2000):
        async with redis.pipeline(transaction=False) as pipe:
            for payload in payloads[start : start + 2000]:
                pipe.xadd(CLICK_STREAM, {"e": payload})
            await pipe.execute()


async def drained(redis: Redis) -> bool:
    for group in await redis.xinfo_groups(CLICK_STREAM):
        return int(group["pending"]) == 0 and int(group["lag"] or 0) == 0
    return False


async def cold_batcher(redis: Redis, clickhouse: Client, batch: list[bytes], batch_rows: int,
                       consumer: str) -> Batcher:
    """A batcher with `batch` in a fresh stream, cold caches and the GC tuned as in a process."""
    await redis.delete(CLICK_STREAM)
    await xadd_all(redis, batch)
    tune_gc()
    clear_caches()
    return Batcher(redis, clickhouse, BatcherSettings(consumer=consumer, batch_rows=batch_rows))


async def batcher_rate(redis: Redis, clickhouse: Client, batch: list[bytes],
                       batch_rows: int) -> tuple[float, int]:
    batcher = await cold_batcher(redis, clickhouse, batch, batch_rows, "bench")
    started = time.perf_counter()
    task = asyncio.create_task(batcher.run())
    while batcher.stats.inserted + batcher.stats.duplicates < len(batch):
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    batcher.stop()
    await task
    return len(batch) / elapsed, batcher.stats.batches


async def phases(redis: Redis, clickhouse: Client, batch: list[bytes],
                 batch_rows: int) -> dict[str, float]:
    """µs per event of each step of a batch, run one after the other (no overlap)."""
    batcher = await cold_batcher(redis, clickhouse, batch, batch_rows, "phases")
    await batcher.ensure_group()
    spent = dict.fromkeys(("read", "check", "insert"), 0.0)
    done = 0
    while done < len(batch):
        started = time.perf_counter()
        entries = await batcher._collect()
        read = time.perf_counter()
        ready = sort_entries(entries, batcher.sink)
        checked = time.perf_counter()
        await batcher._insert_and_ack(ready.fresh, ready.repeated)
        spent["read"] += read - started
        spent["check"] += checked - read
        spent["insert"] += time.perf_counter() - checked
        done += len(entries)
    return {step: seconds / len(batch) * 1e6 for step, seconds in spent.items()}


async def freshness(redis: Redis, clickhouse: Client, rate: int, seconds: float,
                    seed: int, flush_ms: int) -> list[float]:
    """Seconds from each event's XADD reply to the first count() that includes it."""
    await redis.delete(CLICK_STREAM)
    total = int(rate * seconds)
    batch = events(total, seed, int(time.time() * 1000))
    answered: list[float] = []
    visible: list[float] = []
    batcher = Batcher(redis, clickhouse, BatcherSettings(consumer="fresh", flush_ms=flush_ms))
    task = asyncio.create_task(batcher.run())
    tick_s = 0.01
    per_tick = max(1, int(rate * tick_s))

    async def produce() -> None:
        started = time.perf_counter()
        for index in range(0, total, per_tick):
            # Each event's ts is its send time: it is answered as soon as the XADD replies.
            chunk = batch[index : index + per_tick]
            async with redis.pipeline(transaction=False) as pipe:
                for event in chunk:
                    event["ts"] = int(time.time() * 1000)
                    pipe.xadd(CLICK_STREAM, {"e": orjson.dumps(event)})
                await pipe.execute()
            now = time.perf_counter()
            answered.extend([now] * len(chunk))
            delay = started + (index + per_tick) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    async def watch() -> None:
        while len(visible) < total:
            count = await asyncio.to_thread(count_clicks, clickhouse)
            now = time.perf_counter()
            visible.extend([now] * (count - len(visible)))
            await asyncio.sleep(0.02)

    await asyncio.gather(produce(), watch())
    batcher.stop()
    await task
    # A single batcher inserts in stream order, so the nth row counted is the nth event sent.
    return [seen - sent for sent, seen in zip(answered, visible, strict=False)]


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(args: argparse.Namespace, redis_url: str, clickhouse: Client) -> None:
    redis = Redis.from_url(redis_url, socket_timeout=10)
    batch = events(args.events, seed=1, start_ms=int(time.time() * 1000) - 3_600_000)

    if args.only_freshness:
        lags = await freshness(redis, clickhouse, args.rate, args.seconds, 2, args.flush_ms)
        log(f"freshness at {args.rate:,}/s for {args.seconds:.0f} s, flush {args.flush_ms} ms: "
            f"p50 {percentile(lags, 0.5):.2f} s, p95 {percentile(lags, 0.95):.2f} s")
        await redis.aclose()
        return
    # Events go to the stream as the edge's bytes; no dict of theirs is left when the batcher
    # starts, as in a batcher process.
    payloads = [orjson.dumps(event) for event in batch]
    rows = [click_row(event) for event in batch]
    del batch
    native = raw_insert_native(clickhouse, rows, args.batch_rows)
    truncate(clickhouse)
    del rows
    raw = raw_insert_lines(
        clickhouse, [click_line(payload)[2] for payload in payloads], args.batch_rows
    )
    log(f"raw insert: {raw:,.0f} rows/s as the batcher's lines, {native:,.0f} rows/s through "
        f"the column insert ({args.events:,} rows, batches of {args.batch_rows:,})")
    truncate(clickhouse)
    rate, batches = await batcher_rate(redis, clickhouse, payloads, args.batch_rows)
    log(f"batcher: {rate:,.0f} events/s ({args.events:,} events in {batches} batches, "
        f"{DISTINCT_UA_SHARE:.0%} distinct UAs, cold UA cache)")
    found = clickhouse.query("SELECT count(), uniqExact(click_id) FROM invite.clicks")
    assert tuple(found.result_rows[0]) == (args.events, args.events), found.result_rows
    if args.phases:
        truncate(clickhouse)
        spent = await phases(redis, clickhouse, payloads, args.batch_rows)
        log("one step after the other, µs per event: " + ", ".join(
            f"{step} {micros:.1f}" for step, micros in spent.items()
        ) + f" (sum {sum(spent.values()):.1f}: {1e6 / sum(spent.values()):,.0f} events/s)")

    truncate(clickhouse)
    lags = await freshness(redis, clickhouse, args.rate, args.seconds, 2, args.flush_ms)
    log(f"freshness at {args.rate:,}/s for {args.seconds:.0f} s, flush {args.flush_ms} ms: "
        f"p50 {percentile(lags, 0.5):.2f} s, p95 {percentile(lags, 0.95):.2f} s, "
        f"max {max(lags):.2f} s ({len(lags):,} clicks)")

    await redis.aclose()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="events for the rate runs")
    parser.add_argument("--batch-rows", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=5000, help="events/s for the freshness run")
    parser.add_argument("--seconds", type=float, default=20.0, help="freshness run length")
    parser.add_argument("--flush-ms", type=int, default=500,
                        help="the batcher's flush interval in the freshness run (500, the default)")
    parser.add_argument("--only-freshness", action="store_true", help="skip the rate runs")
    parser.add_argument("--insert-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a ClickHouse setting added to the batcher's inserts (to compare)")
    parser.add_argument("--phases", action="store_true",
                        help="also time each step of a batch (read, check, insert), one by one")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for setting in args.insert_setting:
        name, equals, value = setting.partition("=")
        if not equals or not name:
            log(f"--insert-setting {setting!r}: expected NAME=VALUE")
            return 2
        INSERT_SETTINGS[name] = value
        log(f"insert setting added: {name} = {value}")
    log(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
        f"python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        directory = Path(scratch)
        (directory / "logs").mkdir()
        children = Children(directory / "logs")
        with stopped_on_exit(children):
            redis_server = BenchRedis(children, directory / "redis")
            redis_server.start()
            clickhouse = open_clickhouse(f"chdb://{directory / 'clickhouse'}")
            migrate(clickhouse)
            try:
                asyncio.run(run(args, redis_server.url, clickhouse))
            finally:
                clickhouse.close()
                redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
