"""Part 2 of `make bench-events`: the events batcher's events/s into `invite.events`, beside a raw
insert of the same lines.

One process, as `invite batcher` has it: a private redis-server (AOF everysec), embedded
ClickHouse (chDB) in a temp dir with every schema migration applied. The events are what the
intake writes to the stream: `loadtests.events_batches`' mix, checked by `edge.events.model`
(the stream's form, about 400 bytes of JSON). Round after round:

1. raw insert: the lines the batcher would send (`analytics.events.sink.event_line`, prepared
   beforehand) inserted into `invite.events` in batches of `--batch-rows` with the batcher's
   insert settings: the engine's ceiling for these rows;
2. batcher: the same events XADDed first, then one `Batcher` on the EVENTS sink drains the
   stream (XREADGROUP, JSON, checks, insert, XACK, XTRIM) with the garbage collector tuned as in
   `invite batcher`; at the end `invite.events` must hold each event exactly once.

`python -m loadtests.events_pipeline [--events N] [--rounds N] [--batch-rows N] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
from redis.asyncio import Redis

from analytics.batcher import Batcher
from analytics.clickhouse import Client, open_clickhouse
from analytics.events.sink import EVENTS_TABLE, event_line
from analytics.insert import INSERT_SETTINGS
from analytics.schema import migrate
from analytics.sinks import EVENTS
from edge.config import BatcherSettings
from edge.events.model import check_events, parse_body
from edge.gc_tuning import tune_gc
from edge.streams import EVENT_STREAM
from loadtests.events_batches import batch_body, batch_events
from loadtests.processes import BenchRedis, Children, stopped_on_exit
from loadtests.profile_edge import cpu_seconds

GOAL_EVENTS_PER_S = 50_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stream_payloads(count: int, seed: int) -> list[bytes]:
    """`count` events in the stream's form, as the intake writes them (parsed and checked by
    the model from the bodies the intake benchmark posts)."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    payloads: list[bytes] = []
    for start in range(0, count, 1000):
        size = min(1000, count - start)
        body = batch_body(batch_events(rng, f"s{seed}-{start}", size, now_ms))
        checked = check_events(parse_body(body, ndjson=False), "api")
        payloads += [orjson.dumps(event) for event in checked]
    return payloads


def truncate(clickhouse: Client) -> None:
    clickhouse.command("TRUNCATE TABLE invite.events")


def count_events(clickhouse: Client) -> tuple[int, int]:
    row = clickhouse.query("SELECT count(), uniqExact(event_id) FROM invite.events").result_rows[0]
    return int(row[0]), int(row[1])


def raw_insert(clickhouse: Client, lines: list[bytes], batch_rows: int, run: str) -> float:
    """Rows/s inserting the batcher's lines as it does, without reading, checking or acking."""
    started = time.perf_counter()
    for start in range(0, len(lines), batch_rows):
        clickhouse.raw_insert(
            f"invite.{EVENTS_TABLE.name}", EVENTS_TABLE.column_names,
            b"\n".join(lines[start : start + batch_rows]),
            fmt=EVENTS_TABLE.fmt,
            settings={**INSERT_SETTINGS, **EVENTS_TABLE.settings,
                      "insert_deduplication_token": f"raw-{run}-{start}"},
        )
    return len(lines) / (time.perf_counter() - started)


async def xadd_all(redis: Redis, payloads: list[bytes]) -> None:
    for start in range(0, len(payloads), 2000):
        async with redis.pipeline(transaction=False) as pipe:
            for payload in payloads[start : start + 2000]:
                pipe.xadd(EVENT_STREAM, {"e": payload})
            await pipe.execute()


def cpu_s(redis_pid: int | None = None) -> float:
    """CPU seconds so far of this process (every thread: the engine's too), or of redis-server."""
    if redis_pid is not None:
        return cpu_seconds(redis_pid)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def batcher_rate(redis: Redis, clickhouse: Client, payloads: list[bytes],
                       batch_rows: int, consumer: str, redis_pid: int) -> dict[str, float]:
    """Events/s of one batcher draining a stream that holds `payloads`, its batches, and the µs
    of CPU per event it (with the engine) and redis-server spent."""
    await redis.delete(EVENT_STREAM)
    await xadd_all(redis, payloads)
    tune_gc()
    batcher = Batcher(redis, clickhouse, BatcherSettings(consumer=consumer, batch_rows=batch_rows),
                      EVENTS)
    cpu_started, redis_started = cpu_s(), cpu_s(redis_pid)
    started = time.perf_counter()
    task = asyncio.create_task(batcher.run())
    while batcher.stats.inserted + batcher.stats.duplicates < len(payloads):
        if task.done():
            task.result()
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    cpu, redis_cpu = cpu_s() - cpu_started, cpu_s(redis_pid) - redis_started
    batcher.stop()
    await task
    if batcher.stats.dead_letters:
        raise RuntimeError(f"{batcher.stats.dead_letters} events went to the dead letters")
    return {"batcher_events_per_s": len(payloads) / elapsed, "batches": batcher.stats.batches,
            "batcher_cpu_us": cpu / len(payloads) * 1e6,
            "redis_cpu_us": redis_cpu / len(payloads) * 1e6}


async def measure(
    args: argparse.Namespace, redis_url: str, redis_pid: int, clickhouse: Client
) -> dict[str, object]:
    redis = Redis.from_url(redis_url, socket_timeout=10)
    log(f"preparing {args.events:,} events in the stream's form")
    payloads = stream_payloads(args.events, seed=1)
    lines = [event_line(payload)[2] for payload in payloads]
    size = sum(map(len, payloads)) / len(payloads)
    runs: list[dict[str, float]] = []
    for round_number in range(1, args.rounds + 1):
        truncate(clickhouse)
        cpu_started = cpu_s()
        raw = raw_insert(clickhouse, lines, args.batch_rows, str(round_number))
        raw_cpu = (cpu_s() - cpu_started) / len(lines) * 1e6
        raw_found = count_events(clickhouse)
        truncate(clickhouse)
        run = await batcher_rate(redis, clickhouse, payloads, args.batch_rows,
                                 f"bench-{round_number}", redis_pid)
        rate, batches = run["batcher_events_per_s"], int(run["batches"])
        found = count_events(clickhouse)
        if found != (args.events, args.events) or raw_found != found:
            raise RuntimeError(f"invite.events holds {found} (count, distinct ids) after the "
                               f"batcher and {raw_found} after the raw insert, not {args.events}")
        runs.append({"round": round_number, "raw_rows_per_s": raw, "raw_cpu_us": raw_cpu, **run,
                     "ratio": rate / raw})
        log(f"round {round_number}/{args.rounds}: raw insert {raw:,.0f} rows/s "
            f"({raw_cpu:.1f} µs of CPU a row), batcher {rate:,.0f} events/s in {batches} batches "
            f"({rate / raw:.2f} of raw; CPU a row: {run['batcher_cpu_us']:.1f} µs here, "
            f"{run['redis_cpu_us']:.1f} µs redis-server); invite.events holds {found[0]:,} "
            f"rows, {found[1]:,} distinct ids")
    await redis.aclose()
    batcher = statistics.median(run["batcher_events_per_s"] for run in runs)
    return {"events": args.events, "batch_rows": args.batch_rows, "mean_event_bytes": size,
            "runs": runs, "batcher_events_per_s": batcher,
            "raw_rows_per_s": statistics.median(run["raw_rows_per_s"] for run in runs),
            "ratio": statistics.median(run["ratio"] for run in runs),
            "batcher_cpu_us": statistics.median(run["batcher_cpu_us"] for run in runs),
            "redis_cpu_us": statistics.median(run["redis_cpu_us"] for run in runs),
            "raw_cpu_us": statistics.median(run["raw_cpu_us"] for run in runs),
            "met": batcher >= GOAL_EVENTS_PER_S}


def report(result: dict[str, object]) -> list[str]:
    runs = result["runs"]
    assert isinstance(runs, list)
    lines = ["| round | raw insert of the batcher's lines (rows/s) | its CPU µs a row | "
             "batcher (events/s) | batches | batcher ÷ raw | batcher's process CPU µs an event | "
             "redis-server's |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        lines.append(f"| {run['round']} | {run['raw_rows_per_s']:,.0f} | "
                     f"{run['raw_cpu_us']:.1f} | {run['batcher_events_per_s']:,.0f} | "
                     f"{run['batches']} | {run['ratio']:.2f} | {run['batcher_cpu_us']:.1f} | "
                     f"{run['redis_cpu_us']:.1f} |")
    lines.append(f"| median | {result['raw_rows_per_s']:,.0f} | {result['raw_cpu_us']:.1f} | "
                 f"**{result['batcher_events_per_s']:,.0f}** | | {result['ratio']:.2f} | "
                 f"{result['batcher_cpu_us']:.1f} | {result['redis_cpu_us']:.1f} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="events_pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="events per run (300000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of raw + batcher (3)")
    parser.add_argument("--batch-rows", type=int, default=BatcherSettings().batch_rows)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    log(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-events-pipeline-") as scratch:
        directory = Path(scratch)
        (directory / "logs").mkdir()
        children = Children(directory / "logs")
        try:
            with stopped_on_exit(children):
                redis_server = BenchRedis(children, directory / "redis")
                redis_server.start()
                clickhouse = open_clickhouse(f"chdb://{directory / 'clickhouse'}")
                migrate(clickhouse)
                try:
                    assert redis_server.child is not None
                    result = asyncio.run(measure(args, redis_server.url,
                                                 redis_server.child.process.pid, clickhouse))
                finally:
                    clickhouse.close()
                    redis_server.stop()
        except KeyboardInterrupt:
            return 130
    result["load_average_after"] = os.getloadavg()[0]
    print("\n".join(report(result)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
