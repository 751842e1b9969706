"""`make bench-queries`: the dashboard's questions on 10M generated clicks, in the embedded engine.

One run opens chDB in a temp dir (or `--data-dir`, reused when it already holds the data), applies
the schema (`analytics.schema.migrate`, views included), and generates inside ClickHouse with
`INSERT … SELECT … FROM numbers(…)`: 5,000 partners in a three-level tree (50 master IBs, 950
sub-IBs, 4,000 affiliates), 10M clicks over the last 90 days (two link codes per partner, forty
sub-IDs on a third of the partners' links), and registrations for 2% of the people's clicks;
the materialized views fill as the clicks go in. It merges the tables (as background merges
would, given time), then adds a live tail the way the batcher writes: 20
unmerged inserts of 5,000 fresh clicks. Then it times, `--rounds` times each after a warm-up, the
calls the API makes (`analytics.queries`, reading the views and raw `clicks` for partial hours):
the default 30-day window for everyone (admin), for the largest master IB's downline, and for one
affiliate; the dashboard's IB tree, top links with their columns and names; and, for comparison,
what the API read before (raw `clicks` FINAL, exact visitors). `--only TEXT` times the questions
whose name contains TEXT, and "summary, everyone" beside them as a yardstick of the machine.

Exit status: 0 when it ran (the goal is reported, not enforced), 2 when chdb is missing, 130 on ^C.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from analytics import links, names, queries
from analytics import tree as ib_tree
from analytics.clickhouse import Client, open_clickhouse
from analytics.filters import ClickFilter
from analytics.schema import CLICK_VIEWS, DATABASE, migrate

GOAL_P95_MS = 100.0
MASTERS, SUB_IBS, AFFILIATES = 50, 950, 4000
INSERT_CHUNK_ROWS = 1_000_000
TAIL_BATCHES, TAIL_ROWS = 20, 5_000
REGISTRATION_SHARE = 0.02
BREAKDOWNS = tuple(queries.DIMENSIONS)

# Skews that make the data look like a programme: a few master IBs hold most of the tree and
# most clicks come from few partners; 80% people; a visitor pool so people come back.
_CLICK_INSERT = """
INSERT INTO invite.clicks
SELECT
    -- A UUIDv7 holding the click's millisecond, as the edge's ids do (registrations find
    -- their clicks by it).
    toUUID(concat(
        substring(leftPad(lower(hex(toUnixTimestamp64Milli(ts))), 12, '0'), 1, 8), '-',
        substring(leftPad(lower(hex(toUnixTimestamp64Milli(ts))), 12, '0'), 9, 4), '-7',
        substring(leftPad(lower(hex(rand64(22))), 16, '0'), 1, 3), '-',
        ['8', '9', 'a', 'b'][1 + rand(21) % 4],
        substring(leftPad(lower(hex(rand64(22))), 16, '0'), 4, 3), '-',
        substring(leftPad(lower(hex(rand64(22))), 16, '0'), 7, 10),
        leftPad(lower(hex(rand(23) % 256)), 2, '0'))) AS click_id,
    toDateTime64({end:DateTime64(3, 'UTC')}, 3, 'UTC')
        - toIntervalMillisecond(rand64(1) % {span_ms:UInt64}) AS ts,
    'c' || toString(pidx) || if(rand(13) % 4 = 0, '-tg', '') AS code,
    if(human, 'person', ['head', 'prefetch', 'preview', 'scanner', 'crawler'][1 + rand(2) % 5])
        AS kind,
    toUInt8(human) AS is_human,
    multiIf(r < 5, 'orphan', r < 10, 'unresolved', r < 20, 'suspended', 'credited') AS outcome,
    if(r < 10, '', {ids:Array(String)}[pidx + 1]) AS partner_id,
    if(r < 10, [], {ancestors:Array(Array(String))}[pidx + 1]) AS ancestors,
    if(r < 10 OR pidx % 5 = 0, '', 'camp-' || toString(pidx % 7)) AS campaign,
    if(pidx % 3 = 0, 'sub-' || toString(rand(14) % 40), '') AS sub_id,
    'https://register.broker.test/signup' AS destination,
    lower(hex(cityHash64(number % 3000000))) AS ip_hash,
    '203.0.113.0/24' AS ip_prefix,
    'Mozilla/5.0' AS user_agent,
    '' AS referer,
    ['', '', 't.me', 'google.com', 'facebook.com', 'youtube.com', 'x.com', 'instagram.com']
        [1 + rand(3) % 8] AS referer_host,
    'en' AS accept_language,
    ['DE', 'GB', 'AE', 'NG', 'ZA', 'IN', 'BR', 'TH', 'MY', 'CY', 'FR', 'ES']
        [1 + toUInt32(12 * pow(randCanonical(4), 2))] AS country,
    ['mobile', 'mobile', 'desktop', 'tablet'][1 + rand(5) % 4] AS device,
    ['Android', 'iOS', 'Windows', 'Mac OS X', 'Linux'][1 + rand(6) % 5] AS os,
    ['Chrome', 'Safari', 'Chrome Mobile', 'Firefox', 'Edge'][1 + rand(7) % 5] AS browser,
    if(human, '', 'bot') AS bot_family,
    toUInt8(rand(8) % 10 < 6) AS first_click,
    toString(reinterpretAsUUID(MD5(toString(rand(9) % 6000000)))) AS visitor_id,
    'GET' AS method,
    now64(3) AS inserted_at
FROM (
    SELECT number, rand(10) % 1000 AS r, rand(11) % 100 < 80 AS human,
        toUInt32(floor({partners:UInt32} * pow(randCanonical(12), 2.5))) AS pidx
    FROM numbers({offset:UInt64}, {rows:UInt64})
)
"""
_REGISTRATIONS = """
INSERT INTO invite.conversions (event_id, event_type, ts, user_id, ctid_trader_account_id,
    click_id, partner_id, ancestors, campaign, source)
SELECT toString(click_id), 'registration', ts + toIntervalMinute(rand() % 600),
    toString(rand64()), '', toString(click_id), partner_id, ancestors, campaign, 'sso'
FROM invite.clicks
WHERE is_human = 1 AND outcome = 'credited' AND rand() % 10000 < {per_10k:UInt32}
"""
_LARGEST_MASTER = """
SELECT ancestors[1] AS master, count() AS clicks FROM invite.clicks
WHERE length(ancestors) > 0 AND ts >= {start:DateTime64(3, 'UTC')}
GROUP BY master ORDER BY clicks DESC LIMIT 1
"""
_BIGGEST_AFFILIATE = """
SELECT partner_id, count() AS clicks FROM invite.clicks
WHERE partner_id LIKE 'aff-%' AND ts >= {start:DateTime64(3, 'UTC')}
GROUP BY partner_id ORDER BY clicks DESC LIMIT 1
"""
# What the API read before schema migration 3 (raw `clicks`, exact visitors), for comparison.
RAW_QUESTIONS = {
    "clicks + people + exact visitors, everyone, FINAL": """
        SELECT count(), countIf(is_human = 1), uniqExactIf(cityHash64(visitor_id), is_human = 1)
        FROM invite.clicks FINAL
        WHERE ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')}
            AND outcome = 'credited'
        SETTINGS do_not_merge_across_partitions_select_final = 1
    """,
    "clicks + people + exact visitors, largest master IB + downline, FINAL": """
        SELECT count(), countIf(is_human = 1), uniqExactIf(cityHash64(visitor_id), is_human = 1)
        FROM invite.clicks FINAL
        WHERE ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')}
            AND outcome = 'credited'
            AND (partner_id = {master:String} OR has(ancestors, {master:String}))
        SETTINGS do_not_merge_across_partitions_select_final = 1
    """,
}


@dataclass
class Timing:
    group: str
    question: str
    p50_ms: float
    p95_ms: float
    max_ms: float
    runs: int

    @property
    def meets_goal(self) -> bool:
        return self.p95_ms <= GOAL_P95_MS


def tree() -> tuple[list[str], list[list[str]]]:
    """Partner ids and ancestor snapshots (root first), index = the `pidx` of the generator.
    Low-numbered master IBs and sub-IBs get most children, as real programmes do."""
    ids: list[str] = []
    ancestors: list[list[str]] = []
    for i in range(MASTERS):
        ids.append(f"ib-{i:04d}")
        ancestors.append([])
    for i in range(SUB_IBS):
        master = int(MASTERS * (i / SUB_IBS) ** 2)
        ids.append(f"sub-{i:04d}")
        ancestors.append([ids[master]])
    for i in range(AFFILIATES):
        sub = MASTERS + int(SUB_IBS * (i / AFFILIATES) ** 2)
        ids.append(f"aff-{i:04d}")
        ancestors.append([*ancestors[sub], ids[sub]])
    return ids, ancestors


def generate(client: Client, rows: int, days: int, end: datetime) -> None:
    ids, ancestors = tree()
    now = datetime.now(UTC)
    client.insert(
        f"{DATABASE}.partners",
        [[pid, (anc or [""])[-1], "ib" if len(anc) < 2 else "affiliate", "active", pid, anc,
          len(anc) + 1, now] for pid, anc in zip(ids, ancestors, strict=True)],
        column_names=["partner_id", "parent_id", "type", "status", "name", "ancestors", "level",
                      "updated_at"],
    )
    base = {"ids": ids, "ancestors": ancestors, "partners": len(ids), "end": end,
            "span_ms": days * 86_400_000}
    for offset in range(0, rows, INSERT_CHUNK_ROWS):
        started = time.perf_counter()
        client.command(
            _CLICK_INSERT,
            parameters={**base, "offset": offset, "rows": min(INSERT_CHUNK_ROWS, rows - offset)},
        )
        done = min(offset + INSERT_CHUNK_ROWS, rows)
        _say(f"  clicks {done:>11,} / {rows:,}  ({time.perf_counter() - started:.1f} s)")
    client.command(_REGISTRATIONS, parameters={"per_10k": int(REGISTRATION_SHARE * 10_000)})


def merge(client: Client, tables: tuple[str, ...] | None = None) -> None:
    every = ("clicks", "conversions", "registration_codes", "partners",
             *(view.table for view in CLICK_VIEWS))
    for table in tables or every:
        client.command(f"OPTIMIZE TABLE {DATABASE}.{table} FINAL")


def add_live_tail(client: Client, end: datetime) -> None:
    """Small recent inserts, as the batcher makes them: unmerged parts, as in production."""
    ids, ancestors = tree()
    base = {"ids": ids, "ancestors": ancestors, "partners": len(ids), "end": end,
            "span_ms": 3_600_000}
    for batch in range(TAIL_BATCHES):
        client.command(
            _CLICK_INSERT,
            parameters={**base, "offset": 10**10 + batch * TAIL_ROWS, "rows": TAIL_ROWS},
        )


def timed(call: Callable[[], object], rounds: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(samples: list[float], share: float) -> float:
    """Nearest rank: of 20 runs, p95 is the 19th fastest."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def timing(group: str, question: str, samples: list[float]) -> Timing:
    return Timing(group, question, round(statistics.median(samples), 1),
                  round(percentile(samples, 0.95), 1), round(max(samples), 1), len(samples))


def api_questions(
    client: Client, window: ClickFilter, master: str, affiliate: str
) -> dict[str, Callable[[], object]]:
    downline = ClickFilter(start=window.start, end=window.end, partner_id=master,
                           include_downline=True)
    one = ClickFilter(start=window.start, end=window.end, partner_id=affiliate)
    asked: dict[str, Callable[[], object]] = {
        "summary, everyone": lambda: queries.summary(client, window),
        "day series, everyone": lambda: queries.timeseries(client, window, "day"),
    }
    for by in BREAKDOWNS:
        asked[f"top 20 {by}, everyone"] = partial(queries.breakdown, client, window, by, 20)
    asked["summary, largest master IB + downline"] = lambda: queries.summary(client, downline)
    asked["day series, largest master IB + downline"] = (
        lambda: queries.timeseries(client, downline, "day")
    )
    for by in BREAKDOWNS:
        asked[f"top 20 {by}, largest master IB + downline"] = partial(
            queries.breakdown, client, downline, by, 20
        )
    asked["hour series (7 days), everyone"] = lambda: queries.timeseries(
        client, ClickFilter(start=window.end - timedelta(days=7), end=window.end), "hour"
    )
    asked["summary, one affiliate"] = lambda: queries.summary(client, one)
    asked["day series, one affiliate"] = lambda: queries.timeseries(client, one, "day")
    asked.update(dashboard_questions(client, window, master, downline))
    return asked


def dashboard_questions(
    client: Client, window: ClickFilter, master: str, downline: ClickFilter
) -> dict[str, Callable[[], object]]:
    """What the dashboard adds: the IB tree level by level, the link table's columns, names and
    the unknown-partner check every question with a partnerId makes."""
    as_partner = ClickFilter(start=window.start, end=window.end, partner_id=master,
                             scope_partner_id=master)
    master_only = ClickFilter(start=window.start, end=window.end, partner_id=master)

    def top_links(f: ClickFilter) -> object:
        rows = queries.breakdown(client, f, "link", 20)
        return links.link_columns(client, f, [row.key for row in rows])

    def top_partners_named() -> object:
        rows = queries.breakdown(client, window, "partner", 20)
        return names.names(client, [row.key for row in rows])

    return {
        "tree: the roots (admin), 50 busiest": lambda: ib_tree.tree(client, window, 50),
        "tree: largest master IB's children (admin)": lambda: ib_tree.tree(client, master_only, 50),
        "tree: largest master IB's children (its token)": (
            lambda: ib_tree.tree(client, as_partner, 50)),
        "top 20 links with their columns, everyone": lambda: top_links(window),
        "top 20 links with their columns, largest master IB + downline": (
            lambda: top_links(downline)),
        "top 20 partners with their names, everyone": top_partners_named,
        "unknown-partner check": lambda: names.check_known(client, master),
    }


def sql_questions(
    client: Client, questions: dict[str, str], parameters: dict[str, Any]
) -> dict[str, Callable[[], object]]:
    return {
        name: partial(client.query, sql, parameters=parameters) for name, sql in questions.items()
    }


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def report(timings: list[Timing], facts: dict[str, Any]) -> str:
    lines = [
        f"{facts['clicks']:,} clicks ({facts['rows']:,} rows with the live tail), "
        f"{facts['partners']:,} partners, {facts['registrations']:,} registrations; "
        f"window {facts['window']}; largest master IB {facts['master']} "
        f"({facts['master_clicks']:,} clicks in its tree in the window); "
        f"affiliate {facts['affiliate']}.",
        "",
        "| source | question | p50 ms | p95 ms | max ms | ≤ 100 ms |",
        "|---|---|---:|---:|---:|---|",
    ]
    for t in timings:
        mark = "yes" if t.meets_goal else "**no**"
        lines.append(
            f"| {t.group} | {t.question} | {t.p50_ms:,.1f} | {t.p95_ms:,.1f} | {t.max_ms:,.1f} "
            f"| {mark} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-queries", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="clicks (default 10M)")
    parser.add_argument("--days", type=int, default=90, help="days of clicks (default 90)")
    parser.add_argument("--rounds", type=int, default=20, help="timed runs per question (20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (2)")
    parser.add_argument("--data-dir", type=Path,
                        help="keep the data here; reused when it already holds clicks")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--only", help="time only the questions whose name contains this")
    args = parser.parse_args(argv)

    temp = None if args.data_dir else Path(tempfile.mkdtemp(prefix="bench-queries-"))
    directory = (args.data_dir or temp / "clickhouse").resolve()  # type: ignore[operator]
    try:
        client = open_clickhouse(f"chdb://{directory}")
    except ImportError:
        _say("chdb is not installed: `pip install -e '.[analytics]'`")
        return 2
    try:
        started = time.perf_counter()
        applied = migrate(client)
        migrated_s = time.perf_counter() - started
        end = datetime.now(UTC)
        existing = int(client.query("SELECT count() FROM invite.clicks").result_rows[0][0])
        if existing and applied:
            # A migration that rebuilt views leaves them in many parts: merge the views (not
            # `clicks`, whose live tail stays unmerged), as background merges would.
            _say(f"schema migrations {applied} applied to {existing:,} clicks in "
                 f"{migrated_s:.0f} s; merging the views")
            merge(client, tuple(view.table for view in CLICK_VIEWS))
        if existing:
            _say(f"reusing {existing:,} clicks in {directory}")
            end = client.query("SELECT max(ts) FROM invite.clicks").result_rows[0][0]
            end = end.replace(tzinfo=UTC)
        else:
            _say(f"generating {args.rows:,} clicks over {args.days} days in {directory}")
            started = time.perf_counter()
            generate(client, args.rows, args.days, end)
            _say(f"generated in {time.perf_counter() - started:.0f} s; merging")
            started = time.perf_counter()
            merge(client)
            _say(f"merged in {time.perf_counter() - started:.0f} s; adding the live tail")
            add_live_tail(client, end)

        window = ClickFilter.last(end + timedelta(seconds=1))
        master, master_clicks = client.query(
            _LARGEST_MASTER, parameters={"start": window.start}).result_rows[0]
        affiliate = client.query(
            _BIGGEST_AFFILIATE, parameters={"start": window.start}).result_rows[0][0]
        facts: dict[str, Any] = {
            "clicks": int(client.query(
                "SELECT count() FROM invite.clicks FINAL").result_rows[0][0]),
            "rows": int(client.query("SELECT count() FROM invite.clicks").result_rows[0][0]),
            "partners": MASTERS + SUB_IBS + AFFILIATES,
            "registrations": int(client.query(
                "SELECT count() FROM invite.conversions").result_rows[0][0]),
            "window": f"{window.start:%Y-%m-%d %H:%M}..{window.end:%Y-%m-%d %H:%M} UTC (30 days)",
            "master": master, "master_clicks": int(master_clicks), "affiliate": affiliate,
            "parts": int(client.query(
                "SELECT count() FROM system.parts WHERE database = 'invite' AND table = 'clicks' "
                "AND active").result_rows[0][0]),
        }
        _say(f"timing {args.rounds} rounds per question")
        timings: list[Timing] = []
        parameters = {"start": window.start, "end": window.end, "master": master}
        groups = [
            ("API (analytics.queries)", api_questions(client, window, master, affiliate)),
            ("raw clicks, for comparison", sql_questions(client, RAW_QUESTIONS, parameters)),
        ]
        for group, asked in groups:
            for question, call in asked.items():
                if args.only and args.only not in question and question != "summary, everyone":
                    continue
                timings.append(timing(group, question, timed(call, args.rounds, args.warmup)))
                _say(f"  {group}: {question}: p95 {timings[-1].p95_ms:.1f} ms")
        facts["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        facts["python"] = platform.python_version()
        print(report(timings, facts))
        if args.json:
            args.json.write_text(json.dumps(
                {"facts": facts, "timings": [asdict(t) for t in timings]}, indent=2, default=str))
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
