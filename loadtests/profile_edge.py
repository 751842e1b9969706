"""Where one edge worker spends its time under the benchmark's load: py-spy stacks and CPU split.

`python -m loadtests.profile_edge [--server granian|uvicorn] [--duration 10]` starts its own
redis-server and edge like the benchmark does, loads `/r/{code}` with wrk, samples the worker with
py-spy (`pip install py-spy`) and prints the CPU seconds of each process and the hottest functions.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from loadtests.processes import BenchError, BenchRedis, Children, stopped_on_exit
from loadtests.servers import BROWSER_HEADERS, EdgeServer, venv_script
from loadtests.wrk import Load, WrkResult

TOP = 25
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds_of(stat: Path) -> float:
    """User + system CPU time so far from a /proc stat file."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(n) for n in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / CLOCK_TICKS, sum(fields) / CLOCK_TICKS


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def worker_pid(edge: EdgeServer) -> int:
    """The process that runs the app: granian's worker, or uvicorn's single process."""
    assert edge.child is not None
    main = edge.child.process.pid
    others = [pid for pid in group_pids(main) if pid != main]
    return others[0] if edge.server == "granian" and others else main


def hottest(collapsed: Path) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """Own, inclusive and own-per-file sample counts from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = [frame for frame in stack.split(";") if frame]
        if not frames:
            own["(no Python frame: native code)"] += count
            by_file["(native)"] += count
            continue
        own[frames[-1]] += count
        location = frames[-1].rpartition(" (")[2].rstrip(")").rpartition(":")[0]
        by_file[location.rpartition("site-packages/")[2]] += count
        for frame in set(frames):
            inclusive[frame.rpartition(":")[0] + ")"] += count
    return own, inclusive, by_file, total


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of each thread of a process, by thread name."""
    threads: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        threads[name] = threads.get(name, 0.0) + cpu_seconds_of(task / "stat")
    return threads


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("granian", "uvicorn"), default="granian")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL (py-spy --gil)")
    parser.add_argument("--out", type=Path, default=Path("profile-edge.txt"),
                        help="where py-spy's collapsed stacks go (default profile-edge.txt)")
    return profile(parser.parse_args(argv))


def profile(args: argparse.Namespace, command: Sequence[str] | None = None) -> int:
    """Run the profile; `command` replaces the venv's `invite` (to profile a patched variant)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("profile-edge: py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="profile-edge-"))
    children = Children(workdir)
    try:
        with stopped_on_exit(children):
            redis = BenchRedis(children, workdir / "redis")
            redis.start()
            venv_script("invite")
            edge = EdgeServer(children, redis.url, args.server, workdir / "edge",
                              secrets.token_urlsafe(32), secrets.token_urlsafe(24), command)
            edge.start()
            load = Load(args.connections, 2, BROWSER_HEADERS)
            load.run(children, edge.redirect_url, 2.0)
            assert edge.child is not None and redis.child is not None
            worker = worker_pid(edge)
            wrk = load.start(children, edge.redirect_url, args.duration + 1)
            time.sleep(0.5)
            watched = {"edge worker": [worker], "redis-server": [redis.child.process.pid],
                       "wrk": [wrk.process.pid]}
            if args.server == "granian":
                watched["granian main"] = [edge.child.process.pid]
            before = {name: sum(cpu_seconds(pid) for pid in pids)
                      for name, pids in watched.items()}
            threads_before = thread_cpu(worker)
            machine_before = machine_busy_seconds()
            started = time.monotonic()
            reaped_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            sampler = children.spawn("py-spy", [
                py_spy, "record", "--pid", str(worker), "--duration", str(int(args.duration)),
                "--rate", str(args.rate), "--format", "raw", "--output", str(args.out),
                "--nonblocking", *(["--gil"] if args.gil else []),
            ])
            if sampler.process.wait() != 0:
                raise BenchError(f"py-spy failed:\n{sampler.log_tail()}")
            elapsed = time.monotonic() - started
            reaped_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            py_spy_cpu = (reaped_after.ru_utime + reaped_after.ru_stime
                          - reaped_before.ru_utime - reaped_before.ru_stime)
            threads_after = thread_cpu(worker)
            machine_after = machine_busy_seconds()
            after = {name: sum(cpu_seconds(pid) for pid in pids)
                     for name, pids in watched.items()}
            result: WrkResult = load.finish(children, wrk, args.duration + 1)
            print(f"edge --server {args.server}: {result.requests_per_s:,.0f} redirects/s, "
                  f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms "
                  f"(py-spy attached, --nonblocking)")
            print(f"\nCPU over {elapsed:.1f} s (2 cores = {2 * elapsed:.1f} CPU-s available):")
            for name in watched:
                used = after[name] - before[name]
                print(f"  {name:<14} {used:6.2f} CPU-s  {100 * used / elapsed:5.1f}% of a core")
            print(f"  {'py-spy':<14} {py_spy_cpu:6.2f} CPU-s  "
                  f"{100 * py_spy_cpu / elapsed:5.1f}% of a core")
            busy = machine_after[0] - machine_before[0]
            print(f"  whole machine  {busy:6.2f} CPU-s  "
                  f"{100 * busy / (machine_after[1] - machine_before[1]):5.1f}% of all cores busy "
                  "(the rest of the gap: other processes on the machine)")
            print("  the edge worker's threads:")
            for name, seconds in sorted(threads_after.items(), key=lambda item: -item[1]):
                used = seconds - threads_before.get(name, 0.0)
                if used >= 0.05:
                    print(f"    {name:<16} {used:6.2f} CPU-s  {100 * used / elapsed:5.1f}%")
            own, inclusive, by_file, total = hottest(args.out)
            scope = "the thread holding the GIL" if args.gil else "every busy thread"
            print(f"\nOwn time by file ({total:,} samples of {scope}):")
            for location, count in by_file.most_common(TOP):
                print(f"  {100 * count / total:5.1f}%  {location}")
            print("\nHottest lines by own time:")
            for frame, count in own.most_common(TOP):
                print(f"  {100 * count / total:5.1f}%  {frame}")
            print("\nBy inclusive time (function):")
            for frame, count in inclusive.most_common(TOP):
                print(f"  {100 * count / total:5.1f}%  {frame}")
            edge.stop()
            redis.stop()
    except BenchError as exc:
        print(f"profile-edge: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
