"""Part 3 of `make bench-events`: the dashboard's funnel questions on 10M clicks and 5M events,
in the embedded engine.

The data comes from `loadtests.events_data` (generated once per `--data-dir`, reused after).
Each question is asked the way `analytics/api.py` asks it, twice: the **events part** (what the
funnel events add: `analytics.events.queries.figures`, `unattributed_events`,
`figures_by_bucket`, `figures_by_key` for the keys the clicks' breakdown returned (by `code`
for the links, beside `analytics.links.link_columns`: their partners and registrations),
`clicks_cohort`), and the **whole answer** the route computes (`analytics.answers`: the parts
that do not depend on each other side by side, on two connections, commissions included),
beside the same parts one after the other on one connection (the baseline of running them side
by side, same run). A time series keeps its closed buckets (analytics.series_cache): its answers
are timed as a dashboard asks them again, and also with nothing stored (the store emptied,
untimed, before each run: a first asking, or every bucket changed). Scopes: everyone (the admin),
the largest master IB with its downline, one affiliate. The window is the dashboard's default
view (its "30d" preset: today and the 29 days before, whole UTC days, as the dashboard asks them:
`from` and `to` as dates); `--window rolling` asks the API's default instead (the 30 days up to
the millisecond of now, which no dashboard view asks: partial hours and days at both ends).
`--rounds` timed runs after `--warmup` untimed ones; p95 is the nearest rank (ms). CPU is the
median CPU time the process spent per run (ms, all of the engine's threads).

`--live` inserts a broker's live traffic while timing (loadtests/events_live.py).

`python -m loadtests.events_queries [--data-dir DIR] [--rounds 20] [--window dashboard|rolling]
[--live] [--json FILE]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analytics import answers, links, names, queries
from analytics.clickhouse import Client, open_clickhouse
from analytics.commissions import figures as commission_figures
from analytics.events import queries as funnel_events
from analytics.filters import ClickFilter
from analytics.schema import clear_stores, migrate
from analytics.side import SideParts
from loadtests import bench_queries, events_data
from loadtests.bench_queries import percentile
from loadtests.events_live import LiveTraffic

GOAL_P95_MS = 100.0
BREAKDOWNS = ("country", "device", "os", "browser", "referrer", "campaign", "partner", "subId",
              "link")
AFFILIATE_BREAKDOWNS = ("country", "link")
Call = Callable[[], object]


@dataclass
class Timing:
    scope: str
    question: str
    events_p50_ms: float
    events_p95_ms: float
    whole_p50_ms: float
    whole_p95_ms: float
    runs: int
    events_cpu_ms: float  # CPU time of the process (every engine thread) per run, median
    whole_cpu_ms: float
    # The events part's figures read from `events_credited` alone (no views), same run.
    raw_p50_ms: float | None = None
    raw_p95_ms: float | None = None
    # The whole answer with its parts one after the other on one connection, same run.
    sequential_p50_ms: float | None = None
    sequential_p95_ms: float | None = None
    # A series' whole answer with nothing stored in series_cache (its first asking, or after
    # every bucket changed), same run.
    unstored_p50_ms: float | None = None
    unstored_p95_ms: float | None = None


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(call: Call, rounds: int, warmup: int, before: Call | None = None
          ) -> tuple[list[float], list[float]]:
    """Wall and CPU ms of each timed run (`before` runs untimed before each). CPU time is what a
    shared machine's load inflates least: the engine's work, whichever core it got."""
    for _ in range(warmup):
        call()
    walls, cpus = [], []
    for _ in range(rounds):
        if before is not None:
            before()
        started, cpu_started = time.perf_counter(), cpu_s()
        call()
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((cpu_s() - cpu_started) * 1000)
    return walls, cpus


def breakdown_events_part(client: Client, f: ClickFilter, by: str, keys: list[str]) -> object:
    """What api.breakdown adds to the clicks' rows: the figures by key (and the link columns, the
    partners' names)."""
    if by == "link":
        links.link_columns(client, f, keys)
    found = funnel_events.figures_by_key(client, f, queries.dimension_column(by), keys)
    if by == "partner":
        names.names(client, keys)
    return found


def cohort_steps(client: Client, f: ClickFilter, cohort: str) -> object:
    """What api.funnel adds to the clicks' summary: the cohort's steps."""
    if cohort == "clicks":
        return funnel_events.clicks_cohort(client, f)
    return funnel_events.figures(client, f)


def raw_figures(client: Client, f: ClickFilter, key: str = "''", interval: str | None = None,
                keys: list[str] | None = None) -> object:
    """The baseline: the same figures read from `events_credited` alone, as before the views."""
    query = funnel_events.figures_query(f, key, interval, keys, views=False)
    return client.query(query.sql, parameters=query.parameters).result_rows


def baselines(client: Client, f: ClickFilter, breakdowns: tuple[str, ...],
              keys: dict[str, list[str]]) -> dict[str, Call]:
    """The baseline of each question whose events part is figures."""
    found: dict[str, Call] = {"summary figures": lambda: raw_figures(client, f),
                              "funnel cohort=events": lambda: raw_figures(client, f)}
    for interval in ("day", "hour"):
        found[f"{interval} series figures"] = (
            lambda interval=interval: raw_figures(client, f, interval=interval))
    for by in breakdowns:
        found[f"top 20 {by} with figures"] = (
            lambda by=by: raw_figures(client, f, queries.dimension_column(by), keys=keys[by]))
    if "link" in breakdowns:  # its events part has the link columns too
        found["top 20 link with figures"] = lambda: (
            links.link_columns(client, f, keys["link"]),
            raw_figures(client, f, "code", keys=keys["link"]))
    return found


def scope_questions(client: Client, side: SideParts, f: ClickFilter, breakdowns: tuple[str, ...]
                    ) -> tuple[dict[str, tuple[Call, Call, Call]], dict[str, Call]]:
    """(events part, whole answer, whole answer one part after the other) of each funnel
    question of the dashboard for one scope, and the baselines. A whole answer is asked as its
    route asks it: the parts that do not depend on each other side by side, the events' on a
    connection from `side`; the third is the same parts in turn on one connection (the
    baseline of running them side by side)."""

    def summary_events() -> object:
        figures = funnel_events.figures(client, f)
        if not f.partner_scoped:  # for the admin, as api.summary asks it
            return figures, funnel_events.unattributed_events(client, f)
        return figures

    asked: dict[str, tuple[Call, Call, Call]] = {"summary figures": (
        summary_events, lambda: answers.summary(client, side, f),
        lambda: (queries.summary(client, f), summary_events(),
                 commission_figures.total(client, f)))}
    for interval in ("day", "hour"):
        def events_part(interval: str = interval) -> object:
            return funnel_events.figures_by_bucket(client, f, interval)

        def whole(interval: str = interval) -> object:
            return answers.timeseries(client, side, f, interval)

        def in_turn(interval: str = interval, events_part: Call = events_part) -> object:
            return (queries.timeseries(client, f, interval), events_part(),
                    commission_figures.by_bucket(client, f, interval))

        asked[f"{interval} series figures"] = (events_part, whole, in_turn)
    top: dict[str, list[str]] = {}
    for by in breakdowns:
        keys = top[by] = [row.key for row in queries.breakdown(client, f, by, 20)]

        def breakdown_part(by: str = by, keys: list[str] = keys) -> object:
            return breakdown_events_part(client, f, by, keys)

        def breakdown_whole(by: str = by) -> object:
            return answers.breakdown(client, side, f, by, 20)

        def breakdown_in_turn(by: str = by) -> object:
            rows = queries.breakdown(client, f, by, 20)
            keys = [row.key for row in rows]
            return (rows, breakdown_events_part(client, f, by, keys),
                    commission_figures.by_key(client, f, queries.dimension_column(by), keys))

        asked[f"top 20 {by} with figures"] = (breakdown_part, breakdown_whole, breakdown_in_turn)
    for cohort in funnel_events.COHORTS:
        def cohort_part(cohort: str = cohort) -> object:
            return cohort_steps(client, f, cohort)

        def cohort_whole(cohort: str = cohort) -> object:
            return answers.funnel(client, side, f, cohort)

        def cohort_in_turn(cohort: str = cohort, cohort_part: Call = cohort_part) -> object:
            return queries.summary(client, f), cohort_part()

        asked[f"funnel cohort={cohort}"] = (cohort_part, cohort_whole, cohort_in_turn)
    return asked, baselines(client, f, breakdowns, top)


def timing(scope: str, question: str, events: tuple[list[float], list[float]],
           whole: tuple[list[float], list[float]],
           raw: tuple[list[float], list[float]] | None,
           in_turn: tuple[list[float], list[float]],
           unstored: tuple[list[float], list[float]] | None = None) -> Timing:
    def ms(samples: list[float], share: float) -> float:
        return round(percentile(samples, share), 1)

    return Timing(scope, question, ms(events[0], 0.5), ms(events[0], 0.95), ms(whole[0], 0.5),
                  ms(whole[0], 0.95), len(events[0]), ms(events[1], 0.5), ms(whole[1], 0.5),
                  ms(raw[0], 0.5) if raw else None, ms(raw[0], 0.95) if raw else None,
                  ms(in_turn[0], 0.5), ms(in_turn[0], 0.95),
                  ms(unstored[0], 0.5) if unstored else None,
                  ms(unstored[0], 0.95) if unstored else None)


def report(timings: list[Timing], facts: dict[str, Any]) -> list[str]:
    lines = [
        f"{facts['clicks']:,} clicks, {facts['registered_users']:,} registered users, "
        f"{facts['events']:,} events ({facts['trades']:,} trades by {facts['traders']:,} "
        f"accounts, the busiest {facts['busiest_trader_trades']:,}; {facts['deposits']:,} "
        f"deposits; {facts['reversals']:,} reversals), {facts['credited_rows']:,} rows in "
        f"events_credited ({facts['unattributed_rows']:,} credited to no partner); window "
        f"{facts['window']}; largest master IB {facts['master']}; affiliate {facts['affiliate']}.",
        "",
        "| scope | question | events part p50 | p95 | CPU | without the views p95 | ratio | "
        "whole answer p50 | p95 | CPU | parts in turn p95 | ratio | nothing stored p95 | "
        "events part ≤ 100 ms | whole ≤ 100 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for t in timings:
        raw = f"{t.raw_p95_ms:,.1f}" if t.raw_p95_ms is not None else "–"
        ratio = (f"{t.raw_p95_ms / t.events_p95_ms:.1f}×"
                 if t.raw_p95_ms is not None and t.events_p95_ms else "–")
        lines.append(
            f"| {t.scope} | {t.question} | {t.events_p50_ms:,.1f} | {t.events_p95_ms:,.1f} | "
            f"{t.events_cpu_ms:,.1f} | {raw} | {ratio} | {t.whole_p50_ms:,.1f} | "
            f"{t.whole_p95_ms:,.1f} | {t.whole_cpu_ms:,.1f} | {t.sequential_p95_ms:,.1f} | "
            f"{(t.sequential_p95_ms or 0) / t.whole_p95_ms:.1f}× | "
            f"{'–' if t.unstored_p95_ms is None else f'{t.unstored_p95_ms:,.1f}'} | "
            f"{'yes' if t.events_p95_ms <= GOAL_P95_MS else '**no**'} | "
            f"{'yes' if t.whole_p95_ms <= GOAL_P95_MS else '**no**'} |")
    return lines


def dashboard_window(now: datetime) -> ClickFilter:
    """What the dashboard asks by default (analytics/dashboard/period.js, preset "30d"): `from`
    29 days before today, `to` today, read as the API reads dates (to: the end of that day)."""
    today = now.astimezone(UTC)
    start = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=29)
    return ClickFilter(start=start, end=start + timedelta(days=30))


def measure(client: Client, side: SideParts, end: datetime, rounds: int, warmup: int,
            only: str | None, rolling: bool = False) -> tuple[list[Timing], dict[str, Any]]:
    window = ClickFilter.last(end + timedelta(seconds=1)) if rolling else dashboard_window(end)
    master = client.query(bench_queries._LARGEST_MASTER,
                          parameters={"start": window.start}).result_rows[0][0]
    affiliate = client.query(bench_queries._BIGGEST_AFFILIATE,
                             parameters={"start": window.start}).result_rows[0][0]
    scopes = {
        "everyone": (window, BREAKDOWNS),
        "largest IB + downline": (ClickFilter(start=window.start, end=window.end,
                                              partner_id=master, include_downline=True),
                                  BREAKDOWNS),
        "one affiliate": (ClickFilter(start=window.start, end=window.end, partner_id=affiliate),
                          AFFILIATE_BREAKDOWNS),
    }
    facts: dict[str, Any] = {
        **events_data.describe(client), "master": master, "affiliate": affiliate,
        "window": f"{window.start:%Y-%m-%d %H:%M}..{window.end:%Y-%m-%d %H:%M} UTC (30 days, "
                  + ("the API's default: up to now)" if rolling else "the dashboard's 30d view)"),
    }
    timings: list[Timing] = []
    for scope, (f, breakdowns) in scopes.items():
        asked, raw_calls = scope_questions(client, side, f, breakdowns)
        for question, (events_part, whole, one_after_other) in asked.items():
            if only and only not in question:
                continue
            events = timed(events_part, rounds, warmup)
            answers = timed(whole, rounds, warmup)
            in_turn = timed(one_after_other, rounds, warmup)
            baseline = raw_calls.get(question)
            raw = timed(baseline, rounds, warmup) if baseline else None
            unstored = timed(whole, rounds, 0, lambda: clear_stores(client)) \
                if "series" in question else None
            timings.append(timing(scope, question, events, answers, raw, in_turn, unstored))
            events_data.say(f"  {scope}: {question}: events part p95 "
                            f"{timings[-1].events_p95_ms:.1f} ms"
                            + (f" (without the views {timings[-1].raw_p95_ms:.1f})" if raw else "")
                            + f", whole answer p95 {timings[-1].whole_p95_ms:.1f} ms"
                            + f" (in turn {timings[-1].sequential_p95_ms:.1f}"
                            + (f", nothing stored {timings[-1].unstored_p95_ms:.1f}"
                               if unstored else "") + ")")
    facts["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return timings, facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="events_queries", description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=10_000_000, help="clicks (10M)")
    parser.add_argument("--events", type=int, default=5_000_000, help="events (5M)")
    parser.add_argument("--days", type=int, default=90, help="days of clicks (90)")
    parser.add_argument("--rounds", type=int, default=20, help="timed runs per question (20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (2)")
    parser.add_argument("--only", help="only the questions whose name holds this text")
    parser.add_argument("--data-dir", type=Path,
                        help="keep the data here; what it holds already is reused")
    parser.add_argument("--new-events", action="store_true",
                        help="generate the events again (keeping the clicks of --data-dir)")
    parser.add_argument("--window", choices=("dashboard", "rolling"), default="dashboard",
                        help="the dashboard's 30-day view of whole days (default), or the API's "
                        "default window: the 30 days up to now")
    parser.add_argument("--live", action="store_true",
                        help="insert a broker's live traffic while timing (loadtests.events_live;"
                        " it adds rows to --data-dir: use a copy)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)
    temp = None if args.data_dir else Path(tempfile.mkdtemp(prefix="bench-events-queries-"))
    directory = (args.data_dir or temp / "clickhouse").resolve()  # type: ignore[operator]
    client = open_clickhouse(f"chdb://{directory}")
    side = SideParts(lambda: open_clickhouse(f"chdb://{directory}"), 2)
    try:
        applied = migrate(client)
        clicks = int(client.query("SELECT count() FROM invite.clicks").result_rows[0][0])
        events = int(client.query("SELECT count() FROM invite.events").result_rows[0][0])
        if clicks:
            events_data.say(f"reusing {clicks:,} clicks in {directory}"
                            + (f" (schema migrations {applied} applied)" if applied else ""))
            end = client.query("SELECT max(ts) FROM invite.clicks").result_rows[0][0]
            end = end.replace(tzinfo=UTC)
        else:
            end = datetime.now(UTC)
            events_data.generate_clicks(client, args.clicks, args.days, end)
        if events and not args.new_events:
            events_data.say(f"reusing {events:,} events")
        else:
            events_data.generate_events(client, args.days, end, args.events)
        events_data.say(f"timing {args.rounds} rounds per question and part")
        with contextlib.ExitStack() as stack:
            live = stack.enter_context(LiveTraffic(
                lambda: open_clickhouse(f"chdb://{directory}"))) if args.live else None
            timings, facts = measure(client, side, end, args.rounds, args.warmup, args.only,
                                     rolling=args.window == "rolling")
        if live is not None:
            facts.update(live.facts())
            events_data.say(f"live traffic: {live.facts()}")
        print("\n".join(report(timings, facts)))
        if args.json:
            args.json.write_text(json.dumps(
                {"facts": facts, "timings": [asdict(t) for t in timings],
                 "met": all(t.events_p95_ms <= GOAL_P95_MS for t in timings),
                 "whole_met": all(t.whole_p95_ms <= GOAL_P95_MS for t in timings)},
                indent=2, default=str))
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        side.close()
        client.close()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
