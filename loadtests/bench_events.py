"""`make bench-events`: the speed goals of the funnel events (issue 11), each beside a reference
measured in the same run.

1. `POST /api/events` on one edge worker, batches of 1,000 (`loadtests.events_intake`): at least
   20,000 events/s, every accepted event in the stream; the reference is a naive app appending
   each event with its own XADD.
2. The events batcher into `invite.events` (`loadtests.events_pipeline`): at least 50,000
   events/s; the reference is a raw insert of the same lines.
3. The dashboard's funnel questions on 10M clicks and 5M events, embedded
   (`loadtests.events_queries`): each within 100 ms p95.

Each part runs in a process of its own (the embedded ClickHouse is one per process), one after
the other, and writes its figures to a JSON file; this prints the goals at the end. Exit status:
0 when everything ran (the speed goals are reported, not enforced), 1 when a part failed or an
accepted event was missing from the stream, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PARTS = {"intake": "loadtests.events_intake", "pipeline": "loadtests.events_pipeline",
         "queries": "loadtests.events_queries"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_part(part: str, options: list[str], json_path: Path) -> dict[str, Any] | None:
    argv = [sys.executable, "-m", PARTS[part], *options, "--json", str(json_path)]
    log(f"{part}: {' '.join([Path(argv[0]).name, *argv[1:]])}")
    started = time.monotonic()
    status = subprocess.run(argv, cwd=ROOT, check=False).returncode
    log(f"{part}: exit status {status} after {time.monotonic() - started:.0f} s")
    if status != 0 or not json_path.exists():
        return None
    found: dict[str, Any] = json.loads(json_path.read_text())
    return found


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def goals(results: dict[str, dict[str, Any] | None]) -> tuple[list[str], bool]:
    """The goals' lines, and whether nothing went wrong (a part failing or an event missing)."""
    lines = ["", "Goals (issue 11):"]
    sound = True
    for part, result in results.items():
        if result is None:
            lines.append(f"  {part}: did not run to the end (see above)")
            sound = False
        elif part == "intake":
            lines.append(
                f"  POST /api/events, one worker, batches of 1,000: "
                f"{result['edge_events_per_s']:,.0f} events/s (≥ 20,000: "
                f"{verdict(result['met'])}), {result['ratio']:.2f}× the naive baseline's "
                f"{result['baseline_events_per_s']:,.0f}; {result['edge_events_per_cpu_s']:,.0f} "
                f"events per CPU-second of the worker (the baseline "
                f"{result['baseline_events_per_cpu_s']:,.0f}); every accepted event in the "
                f"stream exactly once: {verdict(result['every_event_in_stream'])}")
            sound = sound and bool(result["every_event_in_stream"])
        elif part == "pipeline":
            lines.append(
                f"  batcher into invite.events: {result['batcher_events_per_s']:,.0f} events/s "
                f"(≥ 50,000: {verdict(result['met'])}), {result['ratio']:.2f} of a raw insert "
                f"of the same lines ({result['raw_rows_per_s']:,.0f} rows/s); CPU per event "
                f"{result['batcher_cpu_us']:.1f} µs in the batcher's process and "
                f"{result['redis_cpu_us']:.1f} µs in redis-server")
        else:
            timings = result["timings"]
            worst = max(timings, key=lambda t: t["events_p95_ms"])
            whole = max(timings, key=lambda t: t["whole_p95_ms"])
            over = sum(t["events_p95_ms"] > 100 for t in timings)
            whole_over = sum(t["whole_p95_ms"] > 100 for t in timings)
            facts = result["facts"]
            lines.append(
                f"  funnel questions, {facts['clicks']:,} clicks + {facts['events']:,} events, "
                f"embedded: the slowest events part {worst['events_p95_ms']:.0f} ms p95 "
                f"({worst['scope']}: {worst['question']}); {over} of {len(timings)} over 100 ms "
                f"(≤ 100 ms p95: {verdict(bool(result['met']))}); the slowest whole answer "
                f"{whole['whole_p95_ms']:.0f} ms p95 ({whole['scope']}: {whole['question']}); "
                f"{whole_over} of {len(timings)} over 100 ms (≤ 100 ms p95: "
                f"{verdict(bool(result['whole_met']))})")
    return lines, sound


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench-events", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=tuple(PARTS),
                        help="run only this part (repeatable; default: all three)")
    parser.add_argument("--data-dir", type=Path,
                        help="the queries' data: generated there once, reused after")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the intake and the batcher (3)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes to try the benchmark out (figures not comparable)")
    parser.add_argument("--json", type=Path, help="also write every part's figures here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    parts = args.only or list(PARTS)
    options: dict[str, list[str]] = {
        "intake": ["--rounds", str(args.rounds)],
        "pipeline": ["--rounds", str(args.rounds)],
        "queries": ["--data-dir", str(args.data_dir)] if args.data_dir else [],
    }
    if args.quick:
        options["intake"] += ["--duration", "3", "--warmup", "1"]
        options["pipeline"] += ["--events", "100000"]
        options["queries"] += ["--clicks", "1000000", "--events", "300000", "--rounds", "5"]
    log(f"bench-events: {' '.join(['python -m loadtests.bench_events', *(argv or sys.argv[1:])])}"
        f"; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, Python "
        f"{platform.python_version()}")
    results: dict[str, dict[str, Any] | None] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-events-") as scratch:
            for part in parts:
                results[part] = run_part(part, options[part], Path(scratch) / f"{part}.json")
    except KeyboardInterrupt:
        print("\nbench-events: interrupted", file=sys.stderr)
        return 130
    lines, sound = goals(results)
    print("\n".join(lines))
    log(f"load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0 if sound else 1


if __name__ == "__main__":
    sys.exit(main())
