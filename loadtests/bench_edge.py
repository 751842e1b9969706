"""`make bench-edge`: the edge's redirects/s, latency and click accounting against a naive baseline.

One run starts its own redis-server (AOF, appendfsync everysec) and alternates, round after round,
the baseline (Starlette on uvicorn awaiting one XADD per request), the edge under granian and the
edge under uvicorn: each a fresh process with one worker on a FLUSHALL'd Redis, loaded by wrk on
the same cores. It reports the median of the rounds and checks that every redirect a server
answered is in its stream; then it measures the edge while Redis is killed and restarted.

Exit status: 0 when it ran (goals are reported, not enforced), 1 when a click went missing or a
run failed, 2 when wrk or redis-server is not installed, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.errors import ConfigError
from loadtests.outage import OutageResult, run_outage
from loadtests.processes import BenchError, BenchRedis, Children, stopped_on_exit
from loadtests.servers import (
    BROWSER_HEADERS,
    ROOT,
    BaselineServer,
    EdgeServer,
    Server,
    settle,
    venv_script,
)
from loadtests.wrk import Load, WrkError, WrkResult, wrk_binary

CONFIGS = ("baseline", "edge-granian", "edge-uvicorn")
LABELS = {
    "baseline": "baseline: Starlette+uvicorn, 1 XADD/request",
    "edge-granian": "edge: invite edge --server granian",
    "edge-uvicorn": "edge: invite edge --server uvicorn",
}
GOAL_RATIO = 2.5
GOAL_P99_MS = 10.0


@dataclass(frozen=True)
class RunResult:
    config: str
    round: int
    wrk: WrkResult
    client_completed: int  # the sanity request, the warm-up's and the measured run's, per wrk
    answered: int  # per the server itself (the edge's invite_redirects_total)
    entries: int  # XLEN of the server's stream
    spooled: int
    mean_batch: float | None  # clicks per XADD pipeline (edge)

    @property
    def missing(self) -> int:
        return max(0, self.answered - self.entries)


@dataclass(frozen=True)
class Summary:
    config: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    answered: int
    entries: int
    missing: int


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True,
                                 check=False).stdout.splitlines()
    packages = {name: importlib.metadata.version(name)
                for name in ("granian", "uvicorn", "starlette", "uvloop", "httptools")}
    packages["redis-py"] = importlib.metadata.version("redis")
    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "edge"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return {
        "edge": f"{revision or '?'}{' + uncommitted changes in edge/' if dirty else ''}",
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": wrk_version[0] if wrk_version else "?",
        **packages,
    }


class Benchmark:
    def __init__(self, args: argparse.Namespace, workdir: Path, children: Children) -> None:
        self.args = args
        self.workdir = workdir
        self.children = children
        self.load = Load(args.connections, args.threads, BROWSER_HEADERS)
        self.redis = BenchRedis(children, workdir / "redis")
        self.secret = secrets.token_urlsafe(32)
        self.admin_token = secrets.token_urlsafe(24)
        self.runs: list[RunResult] = []

    def server(self, config: str, round_number: int) -> Server:
        if config == "baseline":
            return BaselineServer(self.children, self.redis.url)
        server = config.removeprefix("edge-")
        return EdgeServer(self.children, self.redis.url, server,
                          self.workdir / f"{config}-{round_number}", self.secret,
                          self.admin_token)

    def run(self) -> int:
        self.redis.start()
        info = machine()
        info["redis-server"] = self.redis.version()
        info["load_average_before"] = load_average()
        log(f"machine: {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, "
            f"redis-server {info['redis-server']}, {info['wrk']}; edge at {info['edge']}; "
            f"load average {info['load_average_before']} (other work shares these cores)")
        log(f"redis-server on {self.redis.url}, AOF on appendfsync everysec, "
            f"data in {self.redis.directory}")
        log(f"load: wrk -t{self.args.threads} -c{self.args.connections} --latency, "
            f"{self.args.warmup:g} s warm-up + {self.args.duration:g} s measured per run, "
            f"{self.args.rounds} round(s)")
        for round_number in range(1, self.args.rounds + 1):
            for config in CONFIGS:
                self.runs.append(self.measure(config, round_number))
        summaries = {config: self.summarize(config) for config in CONFIGS}
        info["load_average_after_rounds"] = load_average()
        print_table(self.runs, summaries)
        print(f"  (load average {info['load_average_before']} before the rounds, "
              f"{info['load_average_after_rounds']} after)")
        all_missing = sum(run.missing for run in self.runs)
        print_goals(summaries, all_missing)
        outage: OutageResult | None = None
        if not self.args.no_outage:
            self.redis.flushall()
            edge = EdgeServer(self.children, self.redis.url, "uvicorn", self.workdir / "outage",
                              self.secret, self.admin_token)
            outage = run_outage(self.children, self.redis, self.load, edge, self.args.warmup, log)
            outage.print()
            all_missing += outage.missing
        if self.args.json:
            self.args.json.write_text(json.dumps({
                "machine": info,
                "command": " ".join([Path(sys.executable).name, "-m", "loadtests.bench_edge",
                                     *sys.argv[1:]]),
                "runs": [asdict(run) for run in self.runs],
                "summary": [asdict(summary) for summary in summaries.values()],
                "outage": asdict(outage) if outage else None,
            }, indent=2))
            log(f"figures written to {self.args.json}")
        self.redis.stop()
        if all_missing:
            log(f"FAIL: {all_missing} answered click(s) are not in the stream")
            return 1
        return 0

    def measure(self, config: str, round_number: int) -> RunResult:
        where = f"round {round_number}/{self.args.rounds} {config}"
        self.redis.flushall()
        server = self.server(config, round_number)
        log(f"{where}: starting on {server.base_url}")
        try:
            server.start()
            log(f"{where}: warm-up {self.args.warmup:g} s on {server.redirect_url}")
            warmup = self.load.run(self.children, server.redirect_url, self.args.warmup)
            log(f"{where}: measuring {self.args.duration:g} s")
            measured = self.load.run(self.children, server.redirect_url, self.args.duration)
            answered = settle(server)
            entries = self.redis.xlen(server.stream)
            spooled, mean_batch = 0, None
            if isinstance(server, EdgeServer):
                counters = server.counters()
                spooled = counters.spooled
                if counters.batches:
                    mean_batch = counters.batched_clicks / counters.batches
                if counters.errors or counters.lost:
                    log(f"{where}: ! {counters.errors} safety-net answers, {counters.lost} lost")
        finally:
            server.stop()
        run = RunResult(config, round_number, measured, 1 + warmup.requests + measured.requests,
                        answered, entries, spooled, mean_batch)
        errors = ""
        if measured.socket_errors or measured.non_2xx_3xx:
            errors = (f"; ! {measured.socket_errors} socket errors, "
                      f"{measured.non_2xx_3xx} non-2xx/3xx")
        batch = f", {mean_batch:.1f} clicks/XADD batch" if mean_batch else ""
        if spooled:
            batch += f", ! {spooled:,} clicks went through the disk spool"
        log(f"{where}: {measured.requests_per_s:,.0f} redirects/s, p50 {measured.p50_ms:.2f} ms, "
            f"p99 {measured.p99_ms:.2f} ms; answered {answered:,}, stream {entries:,}, "
            f"wrk {run.client_completed:,}, missing {run.missing}{batch}{errors}")
        return run

    def summarize(self, config: str) -> Summary:
        runs = [run for run in self.runs if run.config == config]
        return Summary(
            config=config,
            requests_per_s=statistics.median(run.wrk.requests_per_s for run in runs),
            p50_ms=statistics.median(run.wrk.p50_ms for run in runs),
            p99_ms=statistics.median(run.wrk.p99_ms for run in runs),
            answered=sum(run.answered for run in runs),
            entries=sum(run.entries for run in runs),
            missing=sum(run.missing for run in runs),
        )


def print_table(runs: list[RunResult], summaries: dict[str, Summary]) -> None:
    baseline = summaries["baseline"].requests_per_s
    print("\nEvery run (wrk = responses wrk read; answered = the server's own count):")
    print(f"  {'round':>5}  {'configuration':<14} {'redirects/s':>11} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'wrk':>9} {'answered':>9} {'stream':>9} {'missing':>7}")
    for run in runs:
        print(f"  {run.round:>5}  {run.config:<14} {run.wrk.requests_per_s:>11,.0f} "
              f"{run.wrk.p50_ms:>7.2f} {run.wrk.p99_ms:>7.2f} {run.client_completed:>9,} "
              f"{run.answered:>9,} {run.entries:>9,} {run.missing:>7}")
    print(f"\nMedian of {max(run.round for run in runs)} round(s), one worker process each:")
    print(f"  {'configuration':<44} {'redirects/s':>11} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'× baseline':>10}  {'answered → stream entries (missing)':<}")
    for summary in summaries.values():
        ratio = summary.requests_per_s / baseline if baseline else float("nan")
        print(f"  {LABELS[summary.config]:<44} {summary.requests_per_s:>11,.0f} "
              f"{summary.p50_ms:>7.2f} {summary.p99_ms:>7.2f} {ratio:>9.2f}×  "
              f"{summary.answered:,} → {summary.entries:,} ({summary.missing})")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_goals(summaries: dict[str, Summary], missing: int) -> None:
    baseline = summaries["baseline"].requests_per_s
    edges = [summaries[config] for config in CONFIGS if config != "baseline"]
    print("\nGoals (uvicorn is the default server of `invite edge`):")
    for edge in edges:
        ratio = edge.requests_per_s / baseline if baseline else 0.0
        print(f"  {edge.config:<13} throughput ≥ {GOAL_RATIO}× baseline per worker: "
              f"{ratio:.2f}×  {verdict(ratio >= GOAL_RATIO)}")
        print(f"  {edge.config:<13} p99 ≤ {GOAL_P99_MS:g} ms at the given connections: "
              f"{edge.p99_ms:.2f} ms  {verdict(edge.p99_ms <= GOAL_P99_MS)}")
    edge_missing = sum(edge.missing for edge in edges)
    print(f"  edge          zero clicks missing: {edge_missing} missing  "
          f"{verdict(edge_missing == 0)}")
    if missing != edge_missing:
        print(f"  (the baseline is missing {missing - edge_missing})")
    fast, slow = sorted(edges, key=lambda edge: edge.requests_per_s, reverse=True)
    print(f"  faster server for the edge: {fast.config.removeprefix('edge-')} "
          f"({fast.requests_per_s:,.0f} vs {slow.requests_per_s:,.0f} redirects/s, "
          f"{100 * (fast.requests_per_s / slow.requests_per_s - 1):+.0f}%)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench_edge", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds measured per run (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of unmeasured load before each run (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of baseline, edge-granian, edge-uvicorn (default 3)")
    parser.add_argument("--connections", type=int, default=64,
                        help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--no-outage", action="store_true",
                        help="skip the Redis-down measurement")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (logs, Redis data, spools) for inspection")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.warmup <= 0 or args.rounds < 1:
        parser.error("--duration and --warmup must be > 0 and --rounds >= 1")
    if args.connections < args.threads or args.threads < 1:
        parser.error(f"--connections {args.connections} must be >= --threads {args.threads} >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wrk_binary()
        venv_script("invite")
    except (WrkError, BenchError) as exc:
        print(f"bench-edge: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-edge-"))
    children = Children(workdir)
    try:
        with stopped_on_exit(children):
            return Benchmark(args, workdir, children).run()
    except ConfigError as exc:  # no redis-server to start
        print(f"bench-edge: {exc}", file=sys.stderr)
        return 2
    except (BenchError, WrkError) as exc:
        print(f"bench-edge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench-edge: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"bench-edge: kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
