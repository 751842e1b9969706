"""Part 1 of `make bench-events`: `POST /api/events` on one edge worker against a naive baseline.

Each run gets a FLUSHALL'd redis-server (AOF, appendfsync everysec) and a fresh server process
with one worker: `invite edge --workers 1` (uvicorn, its default) or the baseline app
(`loadtests.events_baseline_app`: the standard library's JSON, one awaited XADD per event). The
same client processes load both (`loadtests.events_load`) with batches of 1,000 events. After
each run every accepted eventId is looked up in the stream: none may be missing, none twice.

`python -m loadtests.events_intake [--rounds 3] [--duration 10] [--clients 4] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from edge.errors import ConfigError
from edge.streams import EVENT_STREAM
from loadtests import events_baseline_app
from loadtests.events_load import Generator, LoadResult
from loadtests.processes import (
    BenchError,
    BenchRedis,
    Children,
    stopped_on_exit,
    wait_http_ok,
)
from loadtests.profile_edge import cpu_seconds, group_pids
from loadtests.servers import ROOT, EdgeServer, Server

CONFIGS = ("baseline", "edge")
LABELS = {
    "baseline": "baseline: Starlette+uvicorn, json, 1 XADD/event",
    "edge": "edge: invite edge (uvicorn), 1 worker",
}
GOAL_EVENTS_PER_S = 20_000
READ_CHUNK = 20_000


class EventsEdge(EdgeServer):
    """`invite edge --workers 1` with an events token; no link is needed."""

    def __init__(self, children: Children, redis_url: str, data_dir: Path, secret: str,
                 admin_token: str, events_token: str, server: str = "uvicorn") -> None:
        super().__init__(children, redis_url, server, data_dir, secret, admin_token)
        self.name = "edge"
        self.stream = EVENT_STREAM
        self._events_token = events_token

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "INVITE_EVENTS_TOKEN": self._events_token}

    def start(self) -> None:
        self.child = self._children.spawn(
            self.name,
            [*self._command, "edge", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--server", self.server],
            env=self.environment(), cwd=ROOT,
        )
        wait_http_ok(f"{self.base_url}/healthz", self.child)


class EventsBaseline(Server):
    name = "baseline"
    stream = events_baseline_app.STREAM

    def __init__(self, children: Children, redis_url: str, token: str) -> None:
        super().__init__(children)
        self._redis_url = redis_url
        self._token = token

    def start(self) -> None:
        self.child = self._children.spawn(
            "events-baseline",
            [sys.executable, "-m", "loadtests.events_baseline_app", "--port", str(self.port),
             "--redis-url", self._redis_url, "--token", self._token],
            cwd=ROOT,
        )
        wait_http_ok(f"{self.base_url}/healthz", self.child)


@dataclass(frozen=True)
class Check:
    accepted: int  # the 200 answers' sum, sanity request included
    entries: int  # XLEN
    missing: int  # accepted ids not in the stream
    unexpected: int  # ids in the stream no answer accepted
    repeated: int  # entries whose id another entry has too

    @property
    def ok(self) -> bool:
        return self.accepted == self.entries and not (self.missing or self.unexpected
                                                      or self.repeated)


@dataclass(frozen=True)
class IntakeRun:
    config: str
    round: int
    events_per_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    server_cpu: float  # share of one core the server's processes used in the window
    redis_cpu: float
    client_cpu: float  # share of one core the load generator used (all clients)
    failed: int
    check: Check

    @property
    def per_cpu_s(self) -> float:
        """Events per CPU-second of the server: what one worker with a core of its own takes."""
        return self.events_per_s / self.server_cpu if self.server_cpu else float("nan")


def stream_ids(redis: BenchRedis, stream: str, id_field: str) -> list[str]:
    """The eventId of every entry of the stream, in order."""
    ids: list[str] = []
    low = "-"
    while True:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = redis.client.xrange(  # type: ignore[assignment]
            stream, low, "+", count=READ_CHUNK)
        for _, fields in entries:
            ids.append(str(orjson.loads(fields[b"e"])[id_field]))
        if len(entries) < READ_CHUNK:
            return ids
        low = "(" + entries[-1][0].decode()


def check_stream(redis: BenchRedis, stream: str, id_field: str, load: LoadResult,
                 sanity: set[str]) -> Check:
    accepted_ids = load.accepted_ids() | sanity
    found = stream_ids(redis, stream, id_field)
    distinct = set(found)
    return Check(load.accepted + len(sanity), redis.xlen(stream), len(accepted_ids - distinct),
                 len(distinct - accepted_ids), len(found) - len(distinct))


def _cpu_of(pids: Callable[[], list[int]]) -> float:
    return sum(cpu_seconds(pid) for pid in pids())


class IntakeBenchmark:
    def __init__(self, children: Children, workdir: Path, redis: BenchRedis, clients: int,
                 warmup_s: float, duration_s: float, batch_size: int,
                 log: Callable[[str], None]) -> None:
        self.children = children
        self.workdir = workdir
        self.redis = redis
        self.generator = Generator(clients)
        self.warmup_s, self.duration_s, self.batch_size = warmup_s, duration_s, batch_size
        self.log = log
        self.tokens = {"events": os.urandom(16).hex(), "admin": os.urandom(16).hex(),
                       "secret": os.urandom(24).hex()}
        self.runs: list[IntakeRun] = []

    def server(self, config: str, round_number: int) -> Server:
        if config == "baseline":
            return EventsBaseline(self.children, self.redis.url, self.tokens["events"])
        return EventsEdge(self.children, self.redis.url, self.workdir / f"edge-{round_number}",
                          self.tokens["secret"], self.tokens["admin"], self.tokens["events"])

    def sanity(self, server: Server, label: str) -> set[str]:
        """One small batch: refuse to measure a server that does not accept it whole."""
        ids = [f"{label}-sanity-{index}" for index in range(3)]
        body = {"events": [{"eventId": event_id, "type": "kyc_approved", "userId": 7,
                            "ts": int(time.time() * 1000)} for event_id in ids]}
        answer = httpx.post(f"{server.base_url}/api/events", json=body, timeout=10.0,
                            headers={"Authorization": f"Bearer {self.tokens['events']}"})
        if answer.status_code != 200 or answer.json().get("accepted") != len(ids):
            raise BenchError(f"{server.name}: POST /api/events answered {answer.status_code} "
                             f"{answer.text[:300]}")
        return set(ids)

    def measure(self, config: str, round_number: int, seed: int) -> IntakeRun:
        where = f"round {round_number} {config}"
        self.redis.flushall()
        server = self.server(config, round_number)
        label = f"r{round_number}{config[0]}"
        try:
            server.start()
            assert server.child is not None and self.redis.child is not None
            sanity = self.sanity(server, label)
            self.log(f"{where}: {self.generator.clients} clients, {self.warmup_s:g} s warm-up + "
                     f"{self.duration_s:g} s measured, batches of {self.batch_size:,}")
            window_start, futures = self.generator.start(
                f"{server.base_url}/api/events", self.tokens["events"], label, self.warmup_s,
                self.duration_s, self.batch_size, seed)
            window = (window_start, window_start + self.duration_s)
            server_pids = group_pids(server.child.process.pid)
            redis_pid = self.redis.child.process.pid
            time.sleep(max(0.0, window[0] - time.time()))
            before = (_cpu_of(lambda: server_pids), cpu_seconds(redis_pid))
            time.sleep(max(0.0, window[1] - time.time()))
            after = (_cpu_of(lambda: server_pids), cpu_seconds(redis_pid))
            load = self.generator.finish(futures, window, self.batch_size)
            if load.latest_start_s > 0.5:
                self.log(f"{where}: ! a client started {load.latest_start_s:.1f} s late")
            check = check_stream(self.redis, server.stream,
                                 "event_id" if config == "edge" else "eventId", load, sanity)
        finally:
            server.stop()
        run = IntakeRun(
            config, round_number, load.events_per_s, len(load.measured), load.median_ms,
            load.latency_ms(0.99), (after[0] - before[0]) / self.duration_s,
            (after[1] - before[1]) / self.duration_s, load.client_cpu_s / (
                self.warmup_s + self.duration_s), len(load.failed), check)
        self.log(f"{where}: {run.events_per_s:,.0f} events/s ({run.requests} requests, p50 "
                 f"{run.p50_ms:.0f} ms, p99 {run.p99_ms:.0f} ms); CPU: server "
                 f"{run.server_cpu:.0%}, redis {run.redis_cpu:.0%}, clients {run.client_cpu:.0%}; "
                 f"accepted {check.accepted:,}, stream {check.entries:,}, missing "
                 f"{check.missing}, unexpected {check.unexpected}, twice {check.repeated}"
                 + (f"; ! {run.failed} failed requests" if run.failed else ""))
        return run

    def run(self, rounds: int) -> list[IntakeRun]:
        try:
            for round_number in range(1, rounds + 1):
                for config in CONFIGS:
                    self.runs.append(self.measure(config, round_number, round_number))
        finally:
            self.generator.close()
        return self.runs


def median_of(runs: list[IntakeRun], config: str, value: Callable[[IntakeRun], float]) -> float:
    return statistics.median(value(run) for run in runs if run.config == config)


def report(runs: list[IntakeRun], clients: int) -> tuple[list[str], dict[str, Any]]:
    """Markdown lines of the runs and their medians, and the goal's figures."""
    lines = ["| round | server | events/s | requests | p50 ms | p99 ms | server CPU | "
             "events per server CPU-s | redis CPU | clients CPU | "
             "accepted → stream (missing, unexpected, twice) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        c = run.check
        lines.append(
            f"| {run.round} | {run.config} | {run.events_per_s:,.0f} | {run.requests} | "
            f"{run.p50_ms:.0f} | {run.p99_ms:.0f} | {run.server_cpu:.0%} | "
            f"{run.per_cpu_s:,.0f} | {run.redis_cpu:.0%} | "
            f"{run.client_cpu:.0%} | {c.accepted:,} → {c.entries:,} ({c.missing}, "
            f"{c.unexpected}, {c.repeated}) |")
    edge = median_of(runs, "edge", lambda run: run.events_per_s)
    baseline = median_of(runs, "baseline", lambda run: run.events_per_s)
    edge_checks_ok = all(run.check.ok and not run.failed for run in runs if run.config == "edge")
    lines += ["", f"Median of {max(run.round for run in runs)} round(s), {clients} client "
              "processes, batches of 1,000:", "",
              "| server | events/s | p50 ms | p99 ms | × baseline | events per server CPU-s | "
              "× baseline |", "|---|---:|---:|---:|---:|---:|---:|"]
    base_cpu = median_of(runs, "baseline", lambda run: run.per_cpu_s)
    for config in CONFIGS:
        rate = median_of(runs, config, lambda run: run.events_per_s)
        per_cpu = median_of(runs, config, lambda run: run.per_cpu_s)
        lines.append(f"| {LABELS[config]} | {rate:,.0f} | "
                     f"{median_of(runs, config, lambda run: run.p50_ms):.0f} | "
                     f"{median_of(runs, config, lambda run: run.p99_ms):.0f} | "
                     f"{rate / baseline if baseline else float('nan'):.2f}× | {per_cpu:,.0f} | "
                     f"{per_cpu / base_cpu if base_cpu else float('nan'):.2f}× |")
    edge_cpu = median_of(runs, "edge", lambda run: run.per_cpu_s)
    goals: dict[str, Any] = {
        "edge_events_per_s": edge, "baseline_events_per_s": baseline,
        "ratio": edge / baseline if baseline else float("nan"),
        "edge_events_per_cpu_s": edge_cpu, "baseline_events_per_cpu_s": base_cpu,
        "met": edge >= GOAL_EVENTS_PER_S, "every_event_in_stream": edge_checks_ok,
    }
    return lines, goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="events_intake", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of baseline + edge (3)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured s per run (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up s per run (2)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (4)")
    parser.add_argument("--batch", type=int, default=1000, help="events per request (1000)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.warmup < 0 or args.clients < 1:
        parser.error("--rounds and --clients must be >= 1, --duration > 0, --warmup >= 0")
    workdir = Path(tempfile.mkdtemp(prefix="bench-events-intake-"))
    children = Children(workdir)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    try:
        with stopped_on_exit(children):
            redis = BenchRedis(children, workdir / "redis")
            redis.start()
            log(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; redis-server "
                f"{redis.version()} (AOF everysec) on {redis.url}")
            runs = IntakeBenchmark(children, workdir, redis, args.clients, args.warmup,
                                   args.duration, args.batch, log).run(args.rounds)
            redis.stop()
    except (BenchError, ConfigError) as exc:
        print(f"events_intake: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines, goals = report(runs, args.clients)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"runs": [asdict(run) for run in runs], **goals,
                                         "load_average_after": os.getloadavg()[0]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
