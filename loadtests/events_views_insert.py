"""What the funnel's views (schema migration 11) cost crediting's inserts into `events_credited`.

The embedded engine in a temp dir, every migration applied. `--rows` credited rows (the mix of
`make bench-events`: mostly trades, 5,000 partners in three levels, 50,000 users, 30 days) are
prepared in a staging table, then inserted into `events_credited` in batches of `--batch` rows,
as crediting writes them: once with the views, once with the views dropped (the baseline, same
run), `--rounds` times each, taking turns. Rows/s per insert, median.

`python -m loadtests.events_views_insert [--rows 300000] [--batch 5000] [--rounds 3]`
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from analytics.clickhouse import Client, open_clickhouse
from analytics.events.schema import ROLLUP_TABLES, rebuild_statements
from analytics.schema import migrate

_STAGING = """
CREATE TABLE bench.credited AS invite.events_credited ENGINE = MergeTree ORDER BY tuple()
"""
_ROWS = """
INSERT INTO bench.credited (event_id, event_type, ts, user_id, partner_id, ancestors, campaign,
    sub_id, click_id, country, device, os, browser, referer_host, amount, lots, broker_revenue,
    symbol, is_first_deposit, reversed, sign)
SELECT 'e' || toString(number), ['trade', 'trade', 'trade', 'trade', 'deposit', 'kyc_approved',
        'account_opened', 'withdrawal'][1 + number % 8],
    now64(3) - toIntervalMillisecond(rand64(1) % 2592000000), toString(1 + u),
    'p' || toString(p), if(p < 50, [], if(p < 1000, ['p' || toString(p % 50)],
        ['p' || toString(p % 50), 'p' || toString(50 + p % 950)])),
    'camp-' || toString(p % 7), '', toString(generateUUIDv4(u)),
    ['DE', 'GB', 'AE', 'NG', 'CY'][1 + u % 5], 'mobile', 'Android', 'Chrome', '',
    toDecimal64(rand(2) % 100000 / 100, 8), toDecimal64(rand(3) % 500 / 100, 8),
    toDecimal64(rand(4) % 1000 / 100, 8), 'EURUSD', 0, 0, 1
FROM (SELECT number, rand(5) % 50000 AS u, cityHash64(rand(5) % 50000) % 5000 AS p
      FROM numbers({rows:UInt64}))
"""


def insert_all(client: Client, rows: int, batch: int) -> float:
    """Seconds to insert the staged rows into events_credited, `batch` rows per insert."""
    started = time.perf_counter()
    for offset in range(0, rows, batch):
        client.command(
            "INSERT INTO invite.events_credited SELECT * EXCEPT inserted_at, now64(3) "
            "FROM bench.credited LIMIT {batch:UInt64} OFFSET {offset:UInt64}",
            parameters={"batch": batch, "offset": offset})
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="events_views_insert",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    temp = Path(tempfile.mkdtemp(prefix="bench-views-insert-"))
    client = open_clickhouse(f"chdb://{temp / 'clickhouse'}")
    try:
        migrate(client)
        client.command("CREATE DATABASE IF NOT EXISTS bench")
        client.command(_STAGING)
        client.command(_ROWS, parameters={"rows": args.rows})
        views = {table: statement for table in ROLLUP_TABLES for statement in rebuild_statements()
                 if statement.startswith(f"CREATE MATERIALIZED VIEW IF NOT EXISTS "
                                         f"invite.{table}_mv ")}
        timings: dict[str, list[float]] = {"with the views": [], "without (baseline)": []}
        for round_ in range(args.rounds):
            for label in timings:
                client.command("TRUNCATE TABLE invite.events_credited")
                for table in ROLLUP_TABLES:
                    client.command(f"TRUNCATE TABLE invite.{table}")
                    client.command(f"DROP VIEW IF EXISTS invite.{table}_mv")
                    if label == "with the views":
                        client.command(views[table])
                seconds = insert_all(client, args.rows, args.batch)
                timings[label].append(args.rows / seconds)
                print(f"round {round_ + 1}, {label}: {args.rows / seconds:,.0f} rows/s",
                      flush=True)
        medians = {label: statistics.median(values) for label, values in timings.items()}
        for label, value in medians.items():
            print(f"{label}: {value:,.0f} rows/s (median of {args.rounds})")
        print(f"the views cost: {medians['without (baseline)'] / medians['with the views']:.1f}× "
              "the time of an insert into events_credited")
    finally:
        client.close()
        shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
