"""Run a benchmark against this checkout and an earlier commit, taking turns, and compare.

    python -m loadtests.compare --against REV edge      # make bench-edge, before and after
    python -m loadtests.compare --against REV pipeline  # make bench-pipeline, before and after

The earlier commit is checked out into a temporary git worktree and run with this venv (the two
must need the same packages); each round runs the earlier tree's own benchmark, then this one's,
so that both meet the same moments of a shared machine. Each edge run measures its own naive
baseline too, and the edge is reported as a ratio to it. Prints the figures of every run, the
medians, and this checkout's median as a share of the earlier one's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.servers import ROOT

PIPELINE_FIGURES = {
    "batcher events/s": re.compile(r"batcher: ([\d,]+) events/s"),
    "raw insert rows/s": re.compile(r"raw insert: ([\d,]+) rows/s"),
    "freshness p95 s": re.compile(r"freshness at .* p95 ([\d.]+) s"),
}


@dataclass(frozen=True)
class Tree:
    label: str
    path: Path


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """`revision` checked out (detached) in a temporary directory, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="invite-before-"))
    target = directory / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--quiet", "--detach",
                    str(target), revision], check=True)
    try:
        yield target
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(target)],
                       check=False)
        with contextlib.suppress(OSError):
            directory.rmdir()


def run_benchmark(tree: Tree, module: str, arguments: Sequence[str]) -> str:
    """The benchmark's output (stdout and stderr), run with the tree's code on this venv."""
    env = {**os.environ, "PYTHONPATH": str(tree.path)}
    started = time.monotonic()
    print(f"  {tree.label}: python -m {module} {' '.join(arguments)}", flush=True)
    done = subprocess.run([sys.executable, "-m", module, *arguments], cwd=tree.path, env=env,
                          capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"{tree.label}: {module} exited {done.returncode}:\n{output[-3000:]}")
    print(f"  {tree.label}: done in {time.monotonic() - started:.0f} s", flush=True)
    return output


def pipeline_figures(tree: Tree, arguments: Sequence[str]) -> dict[str, float]:
    output = run_benchmark(tree, "loadtests.bench_pipeline", arguments)
    figures: dict[str, float] = {}
    for name, pattern in PIPELINE_FIGURES.items():
        found = pattern.search(output)
        if found is None:
            raise SystemExit(f"{tree.label}: no '{name}' in the output:\n{output[-2000:]}")
        figures[name] = float(found.group(1).replace(",", ""))
    return figures


def edge_figures(tree: Tree, arguments: Sequence[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "edge.json"
        run_benchmark(tree, "loadtests.bench_edge",
                      ["--rounds", "1", "--no-outage", "--json", str(report), *arguments])
        result = json.loads(report.read_text())
    runs = {run["config"]: run["wrk"] for run in result["runs"]}
    baseline = runs["baseline"]["requests_per_s"]
    figures = {"baseline r/s": baseline}
    for config in ("edge-uvicorn", "edge-granian"):
        if config in runs:
            figures[f"{config} r/s"] = runs[config]["requests_per_s"]
            figures[f"{config} × baseline"] = runs[config]["requests_per_s"] / baseline
            figures[f"{config} p99 ms"] = runs[config]["p99_ms"]
    return figures


BENCHMARKS: dict[str, Callable[[Tree, Sequence[str]], dict[str, float]]] = {
    "edge": edge_figures,
    "pipeline": pipeline_figures,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compare", description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, metavar="REV",
                        help="the earlier commit, e.g. a hash or HEAD~3")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each tree (default 3)")
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS))
    parser.add_argument("arguments", nargs=argparse.REMAINDER,
                        help="passed to the benchmark (after --)")
    args = parser.parse_args(argv)
    extra = [a for a in args.arguments if a != "--"]
    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.against],
                              capture_output=True, text=True, check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    measure = BENCHMARKS[args.benchmark]
    results: dict[str, list[dict[str, float]]] = {}
    with worktree(args.against) as before:
        trees = [Tree(f"before ({revision})", before), Tree(f"this checkout ({head})", ROOT)]
        for round_number in range(1, args.rounds + 1):
            print(f"round {round_number} of {args.rounds}", flush=True)
            for tree in trees:
                results.setdefault(tree.label, []).append(measure(tree, extra))
    report(results)
    return 0


def report(results: dict[str, list[dict[str, float]]]) -> None:
    labels = list(results)
    names = list(results[labels[0]][0])
    print("\nevery run:")
    for label, runs in results.items():
        for index, figures in enumerate(runs, start=1):
            shown = ", ".join(f"{name} {_shown(value)}" for name, value in figures.items())
            print(f"  {label} round {index}: {shown}")
    print("\nmedians:")
    header = "".join(f"{label:>28}" for label in labels)
    print(f"  {'figure':<28}{header}{'after/before':>14}")
    for name in names:
        medians = [statistics.median(run[name] for run in results[label]) for label in labels]
        ratio = medians[-1] / medians[0] if medians[0] else float("nan")
        print(f"  {name:<28}" + "".join(f"{_shown(m):>28}" for m in medians) + f"{ratio:>14.3f}")


def _shown(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
