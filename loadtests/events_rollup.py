"""A prototype, not the schema: would per-user rollups of `events_credited` bring the funnel
figures within 100 ms? Measured on the data of `loadtests.events_queries --data-dir DIR`.

It builds, in a database `bench` beside `invite`, what a materialized view on `events_credited`
would hold: `bench.day2` and `bench.hour2` (SummingMergeTree, rows of `reversed = 0` summed per
partner, event type, day or hour, user and registration dimensions, ordered by time first; the
hours partitioned by day), and `bench.raw_ts` (the credited rows ordered by time, as a projection
would keep them) for the partial hours at both ends of a range. Then it asks the figures of
`analytics.events.queries.figures_query` both ways (whole days from the day rollup, whole hours
from the hour rollup, the rest raw; the per-user sums and the distinct counts as the API computes
them), checks that both give the same answer, and prints wall and CPU milliseconds (medians).

`python -m loadtests.events_rollup --data-dir DIR [--build] [--runs 7]`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analytics.clickhouse import Client, open_clickhouse
from analytics.events import queries as funnel_events
from analytics.filters import ClickFilter
from analytics.rollups import partner_conditions
from loadtests.events_queries import cpu_s

DIMENSIONS = "campaign, sub_id, country, device, os, browser, referer_host, ancestors"
SUMS = "n, amount, lots, revenue, ftd, ftd_amount"
COLUMNS = """partner_id String, event_type LowCardinality(String), t DateTime('UTC'),
    user_id String, ancestors Array(String), campaign String, sub_id String,
    country LowCardinality(String), device LowCardinality(String), os LowCardinality(String),
    browser LowCardinality(String), referer_host LowCardinality(String), n Int64,
    amount Decimal(38, 8), lots Decimal(38, 8), revenue Decimal(38, 8), ftd Int64,
    ftd_amount Decimal(38, 8)"""
ROLLUPS = (("day2", "toYYYYMM(t)", "toStartOfDay"), ("hour2", "toYYYYMMDD(t)", "toStartOfHour"))
RAW_SUMS = ("sign, sign * amount, sign * lots, sign * broker_revenue, sign * is_first_deposit, "
            "sign * is_first_deposit * amount")
PER_USER = ("sum(n) AS n, sum(amount) AS n_amount, sum(lots) AS n_lots, sum(revenue) AS "
            "n_revenue, sum(ftd) AS n_ftd, sum(ftd_amount) AS n_ftd_amount")


def build(client: Client) -> None:
    client.command("CREATE DATABASE IF NOT EXISTS bench")
    for table, partition, bucket in ROLLUPS:
        client.command(f"DROP TABLE IF EXISTS bench.{table}")
        client.command(
            f"CREATE TABLE bench.{table} ({COLUMNS}) ENGINE = SummingMergeTree(({SUMS})) "
            f"PARTITION BY {partition} ORDER BY (t, partner_id, event_type, user_id, "
            f"{DIMENSIONS}) SETTINGS index_granularity = 1024")
        client.command(
            f"INSERT INTO bench.{table} SELECT partner_id, event_type, {bucket}(ts), user_id, "  # noqa: S608
            f"ancestors, campaign, sub_id, country, device, os, browser, referer_host, "
            f"sum(sign), sum(sign * amount), sum(sign * lots), sum(sign * broker_revenue), "
            f"sum(sign * is_first_deposit), sum(sign * is_first_deposit * amount) "
            f"FROM invite.events_credited WHERE reversed = 0 GROUP BY partner_id, event_type, "
            f"{bucket}(ts), user_id, {DIMENSIONS} SETTINGS max_partitions_per_insert_block = 0")
        client.command(f"OPTIMIZE TABLE bench.{table} FINAL")
    client.command("DROP TABLE IF EXISTS bench.raw_ts")
    client.command("CREATE TABLE bench.raw_ts AS invite.events_credited ENGINE = "
                   "CollapsingMergeTree(sign) PARTITION BY toYYYYMMDD(ts) ORDER BY (ts, event_id) "
                   "SETTINGS index_granularity = 1024")
    client.command("INSERT INTO bench.raw_ts SELECT * FROM invite.events_credited "
                   "SETTINGS max_partitions_per_insert_block = 0")
    client.command("OPTIMIZE TABLE bench.raw_ts FINAL")


def _floor(moment: datetime, hours: bool) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0) if hours else moment.replace(
        hour=0, minute=0, second=0, microsecond=0)


def _ceil(moment: datetime, hours: bool) -> datetime:
    floor = _floor(moment, hours)
    return floor if floor == moment else floor + timedelta(hours=1 if hours else 24)


def rollup_query(f: ClickFilter, key: str = "''", interval: str | None = None,
                 keys: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """figures_query's answer from the rollups: whole days, whole hours, then raw rows."""
    conditions, parameters = partner_conditions(f)
    if keys is not None:
        conditions = [*conditions, f"{key} IN {{keys:Array(String)}}"]
        parameters = {**parameters, "keys": keys}
    where = " AND ".join(["partner_id != ''", *conditions])
    bucket = {"hour": "toStartOfHour", "day": "toStartOfDay"}.get(interval or "")
    rolled = f"{bucket}(t)" if bucket else "toDateTime(0, 'UTC')"
    raw = f"{bucket}(ts)" if bucket else "toDateTime(0, 'UTC')"
    days = "bench.hour2" if interval == "hour" else "bench.day2"
    parameters = {**parameters, "s": f.start, "e": f.end, "d0": _ceil(f.start, False),
                  "d1": _floor(f.end, False), "h0": _ceil(f.start, True),
                  "h1": _floor(f.end, True)}

    def span(table: str, low: str, high: str, sums: str, column: str = "t",
             kind: str = "DateTime('UTC')") -> str:
        return (f"SELECT {key} AS key, {raw if column == 'ts' else rolled} AS tt, event_type, "  # noqa: S608
                f"user_id, {sums} FROM {table} WHERE {column} >= {{{low}:{kind}}} AND "
                f"{column} < {{{high}:{kind}}} AND {where}")

    ms = "DateTime64(3, 'UTC')"
    parts = [
        span(days, "d0", "d1", SUMS), span("bench.hour2", "h0", "d0", SUMS),
        span("bench.hour2", "d1", "h1", SUMS),
        span("bench.raw_ts", "s", "h0", RAW_SUMS, "ts", ms) + " AND reversed = 0",
        span("bench.raw_ts", "h1", "e", RAW_SUMS, "ts", ms) + " AND reversed = 0",
    ]
    inner = (f"SELECT key, tt AS t, event_type, user_id, {PER_USER} FROM "  # noqa: S608
             f"({' UNION ALL '.join(parts)}) GROUP BY key, t, event_type, user_id")
    return funnel_events._FIGURES.format(inner=inner), parameters


def measure(client: Client, sql: str, parameters: dict[str, Any], runs: int
            ) -> tuple[float, float, list[str]]:
    for _ in range(2):
        client.query(sql, parameters=parameters)
    walls, cpus = [], []
    answer: Any = []
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), cpu_s()
        answer = client.query(sql, parameters=parameters).result_rows
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((cpu_s() - cpu_started) * 1000)
    return statistics.median(walls), statistics.median(cpus), sorted(map(str, answer))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="events_rollup", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--build", action="store_true", help="(re)build the prototype tables")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    client = open_clickhouse(f"chdb://{args.data_dir.resolve()}")
    if args.build:
        started = time.perf_counter()
        build(client)
        print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for table, rows in client.query(
            "SELECT table, sum(rows) FROM system.parts WHERE database = 'bench' AND active "
            "AND table IN ('day2', 'hour2', 'raw_ts') GROUP BY table ORDER BY table").result_rows:
        print(f"bench.{table}: {rows:,} rows")
    end = client.query("SELECT max(ts) FROM invite.clicks").result_rows[0][0].replace(tzinfo=UTC)
    window = ClickFilter.last(end + timedelta(seconds=1))
    affiliate = client.query(
        "SELECT partner_id FROM invite.events_credited WHERE partner_id LIKE 'aff-%' "
        "GROUP BY partner_id ORDER BY count() DESC LIMIT 1").result_rows[0][0]
    scopes = {"everyone": window,
              "ib-0000 + downline": ClickFilter(start=window.start, end=window.end,
                                                partner_id="ib-0000", include_downline=True),
              f"{affiliate}": ClickFilter(start=window.start, end=window.end,
                                          partner_id=affiliate)}
    asked: list[tuple[str, str | None, str, list[str] | None]] = [
        ("summary", None, "''", None), ("day series", "day", "''", None),
        ("hour series", "hour", "''", None),
        ("5 countries", None, "country", ["GB", "DE", "NG", "AE", "ZA"])]
    print("| scope | figures | raw: wall ms | CPU ms | rollups: wall ms | CPU ms | same answer |")
    print("|---|---|---:|---:|---:|---:|---|")
    for scope, f in scopes.items():
        for name, interval, key, keys in asked:
            query = funnel_events.figures_query(f, key=key, interval=interval, keys=keys)
            raw = measure(client, query.sql, query.parameters, args.runs)
            rolled = measure(client, *rollup_query(f, key, interval, keys), args.runs)
            print(f"| {scope} | {name} | {raw[0]:,.0f} | {raw[1]:,.0f} | {rolled[0]:,.0f} | "
                  f"{rolled[1]:,.0f} | {'yes' if raw[2] == rolled[2] else '**no**'} |",
                  flush=True)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
