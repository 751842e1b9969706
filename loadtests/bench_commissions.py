"""`make bench-commissions`: the commissions ledger over a month of 10M trades, in the embedded
engine (the goals of issue 12: a full recompute within 60 s, 5,000 new trades within 5 s).

One run opens chDB in a temp dir (or `--data-dir`, reused when it already holds the events) with
its query log on, applies the schema (`analytics.schema.migrate`), generates the programme inside
ClickHouse (`loadtests.commissions_data`: 10,000 partners in a five-level forest, 200,000
registered users, their deposits, 10M trades in `--period` and 1M the month before, a few
thousand reversed) and writes the ledger's inputs as the worker does (the timeline, one plan with
rebates by symbol glob, revenue share, CPA, three override levels and tiers, the month's tiers).
Then, taking turns round after round:
- a baseline: the month's credited rows copied into a table of the same shape (`INSERT … SELECT
  *`: the raw cost of writing as many rows in the same engine, on the same load);
- the full recompute: `Ledger.recompute_period(period)`;
- a second baseline: the month's ledger lines copied the same way (the floor for writing them);
and for the incremental update, round after round: 5,000 new trades of 5,000 users written as
the batcher and crediting write them, then `Ledger.apply_changes` (those trades' lines and their
users' CPA), beside a baseline that copies those users' credited rows. With redis-server on
PATH, the worker's pass (`CommissionsWorker.pass_locked`) picking up 5,000 new trades of now,
and once 5,000 late ones of the period (whose next month's tiers it then checks).

Each figure: median and max of the rounds, wall and CPU seconds (the process's, chDB's threads
included: the machine is shared, CPU time moves less with the load), the process's peak RSS
and ClickHouse's peak memory for one statement, and where the time went, statement by statement
(`system.query_log`).

Exit status: 0 when it ran (the goals are reported, not enforced), 2 when chdb is missing, 130
on ^C.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analytics.clickhouse import Client
from analytics.commissions.ledger import Ledger
from analytics.commissions.months import month_of, previous_month
from analytics.schema import migrate
from loadtests import commissions_data as data
from loadtests.commissions_profile import Phase, breakdown, measured, open_engine, statements

GOAL_RECOMPUTE_S = 60.0
GOAL_INCREMENTAL_S = 5.0
CURRENCY = "USD"


def _progress(started: float) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        data.say(f"    step {done:>2} / {total}  ({time.perf_counter() - started:6.1f} s)")
    return show


def _copy(client: Client, name: str, source: str, where: str, parameters: dict[str, Any]) -> None:
    """A baseline: `source`'s rows copied into a fresh table of the same shape."""
    client.command(f"CREATE TABLE IF NOT EXISTS bench.{name}_copy AS {source}")
    client.command(f"TRUNCATE TABLE bench.{name}_copy")
    client.command(f"INSERT INTO bench.{name}_copy SELECT * FROM {source} WHERE {where}",  # noqa: S608
                   parameters=parameters)


def settle(client: Client) -> float:
    """Wait until ClickHouse merges no part (a phase must not pay for the one before);
    returns the seconds waited."""
    started = time.perf_counter()
    while int(client.query("SELECT count() FROM system.merges").result_rows[0][0]):
        time.sleep(0.5)
    return time.perf_counter() - started


def recompute_rounds(client: Client, period: str, rounds: int) -> dict[str, list[Phase]]:
    month = data.month_bounds(period)
    where = ("ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')} "
             "AND sign = 1")
    phases: dict[str, list[Phase]] = {"baseline: copy the credited rows": [],
                                      "full recompute": [],
                                      "baseline: copy the ledger lines": []}
    ledger = Ledger(client, CURRENCY)
    for index in range(1, rounds + 1):
        data.say(f"round {index} / {rounds}")
        settle(client)
        with measured("baseline: copy the credited rows") as phase:
            _copy(client, "credited", "invite.events_credited", where, month)
        phases[phase.name].append(statements(client, phase))
        data.say(f"  baseline (credited rows copied): {phase.seconds:.1f} s")
        settle(client)
        with measured("full recompute") as phase:
            lines = ledger.recompute_period(period, _progress(time.perf_counter()))
        phase.name = f"full recompute ({lines:,} lines)"
        phases["full recompute"].append(statements(client, phase))
        merged = settle(client)
        data.say(f"  full recompute: {lines:,} lines in {phase.seconds:.1f} s; the ledger "
                 f"then merged the new parts in the background for {merged:.1f} s")
        with measured("baseline: copy the ledger lines") as phase:
            _copy(client, "lines", "invite.commissions", "period = {period:String}",
                  {"period": period})
        phases[phase.name].append(statements(client, phase))
        merged = settle(client)
        data.say(f"  baseline (ledger lines copied): {phase.seconds:.1f} s; merged after it "
                 f"for {merged:.1f} s")
    return phases


def incremental_rounds(client: Client, period: str, rounds: int, trades: int,
                       run: str) -> dict[str, list[Phase]]:
    """5,000 new trades in the period's last hours, then their lines (and their users' CPA)
    brought up to date."""
    at = data.month_bounds(period)["end"] - timedelta(hours=2)
    phases: dict[str, list[Phase]] = {"baseline: copy those users' credited rows": [],
                                      "incremental update": []}
    ledger = Ledger(client, CURRENCY)
    for index in range(1, rounds + 1):
        users = data.pick_users(client, trades, salt=1000 + index)
        data.insert_new_trades(client, users, at, f"new-{run}-{index}-", salt=index)
        with measured("baseline: copy those users' credited rows") as phase:
            _copy(client, "users", "invite.events_credited", "user_id IN {users:Array(String)}",
                  {"users": users})
        phases[phase.name].append(statements(client, phase))
        changed: dict[str, set[str]] = {}
        for row in client.query(
                "SELECT user_id, groupUniqArray(event_id) FROM invite.events_credited "
                "WHERE startsWith(event_id, {prefix:String}) GROUP BY user_id",
                parameters={"prefix": f"new-{run}-{index}-"}).result_rows:
            changed[str(row[0])] = {str(e) for e in row[1]}
        settle(client)
        with measured("incremental update") as phase:
            written = ledger.apply_changes(changed, closed=set())
        phase.name = f"incremental update ({len(users):,} users, {written:,} rows written)"
        phases["incremental update"].append(statements(client, phase))
        data.say(f"  incremental round {index} / {rounds}: {len(users):,} users, "
                 f"{written:,} rows in {phase.seconds:.2f} s")
    return phases


def worker_rounds(client: Client, period: str, rounds: int, trades: int, run: str,
                  directory: Path) -> dict[str, list[Phase]]:
    """The worker's pass over a redis-server of our own (skipped without redis-server)."""
    from loadtests import commissions_worker
    from loadtests.processes import BenchRedis, Children, stopped_on_exit

    phases: dict[str, list[Phase]] = {"worker pass (new trades of now)": []}
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    with stopped_on_exit(Children(directory / "logs")) as children:
        redis = BenchRedis(children, directory / "redis")
        redis.start()
        commissions_worker.seed(redis.url, client)
        # A pass before the timed ones, as a worker that has been running has made: it picks up
        # what the seeded marks overlap and, once, the tiers those months touch.
        started = time.perf_counter()
        commissions_worker.one_pass(redis.url, client, CURRENCY)
        data.say(f"  settling pass (untimed) in {time.perf_counter() - started:.1f} s")
        late = month_of(int(time.time() * 1000)) > period
        steps = [("worker pass (new trades of now)", datetime.now(UTC))] * rounds
        if late:
            steps.append((f"worker pass (late trades of {period})",
                          data.month_bounds(period)["end"] - timedelta(hours=1)))
        for index, (name, at) in enumerate(steps, start=1):
            users = data.pick_users(client, trades, salt=5000 + index)
            data.insert_new_trades(client, users, at, f"wrk-{run}-{index}-", salt=50 + index)
            settle(client)
            with measured(name) as phase:
                report = commissions_worker.one_pass(redis.url, client, CURRENCY)
            phase.name = (f"{name}: {report.users:,} users, {report.rows:,} rows, months "
                          f"computed again: {', '.join(report.months) or 'none'}")
            phases.setdefault(name, []).append(statements(client, phase))
            data.say(f"  {phase.name} in {phase.seconds:.2f} s")
            problem = commissions_worker.check_steady(report, period)
            if problem:
                data.say(f"  note: {problem}")
        redis.stop()
    return phases


def summary(name: str, runs: list[Phase], goal: float | None) -> dict[str, Any]:
    seconds = [p.seconds for p in runs]
    median = statistics.median(seconds)
    return {"measurement": name, "runs": len(runs), "median_s": round(median, 2),
            "max_s": round(max(seconds), 2),
            "cpu_median_s": round(statistics.median(p.cpu_s for p in runs), 1),
            "rss_peak_mb": round(max(p.rss_peak_mb for p in runs)),
            "engine_peak_mb": round(max(p.engine_peak_mb for p in runs)),
            "goal_s": goal, "met": None if goal is None else median <= goal}


def median_run(runs: list[Phase]) -> Phase:
    return sorted(runs, key=lambda p: p.seconds)[(len(runs) - 1) // 2]


def report(facts: dict[str, Any], rows: list[dict[str, Any]], ratios: dict[str, float],
           details: list[Phase]) -> str:
    lines = [
        f"{facts['trades']:,} trades in {facts['period']} ({facts['history_trades']:,} the month "
        f"before), {facts['deposits']:,} deposits, {facts['reversed']:,} reversed trades, "
        f"{facts['users']:,} users, {facts['partners']:,} partners in {facts['levels']} levels; "
        f"{facts['lines']:,} ledger lines for the month ({facts['lines_before']:,} the month "
        f"before). Inputs written in "
        f"{facts['inputs_s']}. Load average (1, 5, 15 min) at the start {facts['load']}, at the "
        f"end {facts['load_end']}.", "",
        "| measurement | runs | median s | max s | CPU s (median) | peak RSS MB | CH peak MB "
        "| goal |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        goal = "" if row["goal_s"] is None else (
            f"≤ {row['goal_s']:.0f} s: {'yes' if row['met'] else '**no**'}")
        lines.append(f"| {row['measurement']} | {row['runs']} | {row['median_s']:,.2f} | "
                     f"{row['max_s']:,.2f} | {row['cpu_median_s']:,.1f} | "
                     f"{row['rss_peak_mb']:,} | {row['engine_peak_mb']:,} | {goal} |")
    lines += ["", *(f"- {name}: {value:.1f}x" for name, value in ratios.items())]
    for phase in details:
        lines += ["", f"Where the time goes: {phase.name}, the median run ({phase.seconds:.1f} s "
                      f"wall, {phase.cpu_s:.1f} s CPU):", "", *breakdown(phase)]
    return "\n".join(lines)


def load_average() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def facts_of(client: Client, args: argparse.Namespace,
             inputs_s: dict[str, float]) -> dict[str, Any]:
    def one(sql: str) -> int:
        month = data.month_bounds(args.period)
        return int(client.query(sql, parameters=month).result_rows[0][0])

    return {
        "period": args.period, "levels": len(data.LEVELS),
        "trades": one("SELECT count() FROM invite.events_credited WHERE event_type = 'trade' "
                      "AND ts >= {start:DateTime64(3, 'UTC')} "
                      "AND ts < {end:DateTime64(3, 'UTC')}"),
        "history_trades": one("SELECT count() FROM invite.events_credited WHERE event_type = "
                              "'trade' AND ts < {start:DateTime64(3, 'UTC')}"),
        "deposits": one("SELECT count() FROM invite.events_credited WHERE event_type = 'deposit'"),
        "reversed": one("SELECT count() FROM invite.events_credited WHERE reversed = 1"),
        "users": data.users_count(client), "partners": len(data.forest()[0]),
        "lines": 0, "load": load_average(), "python": platform.python_version(),
        "inputs_s": ", ".join(f"{name} {s:.1f} s" for name, s in inputs_s.items()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-commissions",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--period", default="2026-11", help="the month (2026-11)")
    parser.add_argument("--trades", type=int, default=10_000_000, help="in the month (10M)")
    parser.add_argument("--history-trades", type=int, default=1_000_000,
                        help="in the month before, for the tiers (1M)")
    parser.add_argument("--users", type=int, default=200_000, help="registered users (200k)")
    parser.add_argument("--rounds", type=int, default=3, help="full recomputes (3)")
    parser.add_argument("--incremental-rounds", type=int, default=5, help="(5)")
    parser.add_argument("--new-trades", type=int, default=5_000, help="per update (5,000)")
    parser.add_argument("--no-worker", action="store_true", help="skip the worker's pass")
    parser.add_argument("--data-dir", type=Path,
                        help="keep the data here; reused when it already holds the events")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)

    temp = Path(tempfile.mkdtemp(prefix="bench-commissions-"))
    directory = (args.data_dir or temp / "clickhouse").resolve()
    try:
        client = open_engine(directory, temp / "config")
    except ImportError:
        data.say("chdb is not installed: `pip install -e '.[analytics]'`")
        return 2
    run = f"{int(time.time())}"
    try:
        migrate(client)
        existing = int(client.query("SELECT count() FROM invite.events_credited").result_rows[0][0])
        if existing:
            data.say(f"reusing {existing:,} credited events in {directory}")
        else:
            data.say(f"generating the programme in {directory}")
            started = time.perf_counter()
            data.generate(client, args.period, args.users, args.trades, args.history_trades)
            data.say(f"generated in {time.perf_counter() - started:.0f} s; merging")
            data.merge(client)
        inputs_s = data.write_inputs(client, args.period)
        facts = facts_of(client, args, inputs_s)
        data.say(f"{facts['trades']:,} trades in {args.period}; timing")
        phases = recompute_rounds(client, args.period, args.rounds)
        facts["lines"] = Ledger(client, CURRENCY).count(args.period)
        # The month before too, as the worker's first pass computes every month with events:
        # the users' lines of that month are then in the ledger when they are brought up to date.
        before = previous_month(args.period)
        settle(client)
        with measured(f"full recompute of {before} (once)") as phase:
            facts["lines_before"] = Ledger(client, CURRENCY).recompute_period(before)
        phases[phase.name] = [statements(client, phase)]
        data.say(f"  {before}: {facts['lines_before']:,} lines in {phase.seconds:.1f} s")
        phases.update(incremental_rounds(client, args.period, args.incremental_rounds,
                                         args.new_trades, run))
        if not args.no_worker and shutil.which("redis-server"):
            phases.update(worker_rounds(client, args.period, args.incremental_rounds,
                                        args.new_trades, run, temp))
        goals = {"full recompute": GOAL_RECOMPUTE_S, "incremental update": GOAL_INCREMENTAL_S}
        rows = [summary(name, runs, goals.get(name)) for name, runs in phases.items() if runs]
        by_name = {row["measurement"]: row["median_s"] for row in rows}
        pairs = {
            "full recompute / copying the month's credited rows": (
                "full recompute", "baseline: copy the credited rows"),
            "full recompute / copying the month's ledger lines": (
                "full recompute", "baseline: copy the ledger lines"),
            "incremental update / copying those users' credited rows": (
                "incremental update", "baseline: copy those users' credited rows"),
        }
        ratios = {name: by_name[a] / by_name[b] for name, (a, b) in pairs.items()
                  if a in by_name and b in by_name}
        details = [median_run(runs) for name, runs in phases.items()
                   if runs and not name.startswith("baseline") and "(once)" not in name]
        facts["load_end"] = load_average()
        text = report(facts, rows, ratios, details)
        print(text)
        if args.json:
            args.json.write_text(json.dumps({
                "facts": facts, "summary": rows, "ratios": ratios,
                "phases": {name: [asdict(p) for p in runs] for name, runs in phases.items()},
            }, indent=2, default=str))
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()
        shutil.rmtree(temp, ignore_errors=True)
        if args.data_dir is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
