"""The data of part 3 of `make bench-events`, generated inside ClickHouse: 10M clicks (the
generator of `loadtests.bench_queries`: 5,000 partners in a three-level IB forest), 200,000
registered users in `invite.conversions` (the codes of their clicks stored, as the batcher stores
them), and about 5M funnel events with a long tail, written
to `invite.events` and to `invite.events_credited` as crediting writes them (sign 1 rows with
the partner, ancestors, campaign and click dimensions of the user's registration).

Per registered user, drawn from hashes of its index: an account (70%), KYC (70% of those), a
first deposit (half of those: 24.5% of the users) and more deposits with a Pareto tail,
withdrawals for 40% of the depositors, and trades for 80% of them: a rate per day of the days
they trade (from the first deposit to their last event, up to 60 days), Pareto-distributed (a few
traders make tens of thousands), scaled so that the events add up to the target.
Times follow each other (registration, account, KYC, deposits, trades) up to now. 0.4% of the
deposits and trades are reversed (a `reversal` event; the credited row keeps `reversed = 1`, and
the FTD is the earliest deposit not reversed). 2,000 users without a registration have events
too: credited to no partner, as crediting leaves them. Last, a live tail: 20 unmerged inserts of
1,000 trades of the last hour, as the batcher and crediting write them.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Final

from analytics import registration_codes
from analytics.clickhouse import Client
from analytics.events.schema import ROLLUP_TABLES
from loadtests import bench_queries

USERS: Final = 200_000
UNKNOWN_USERS: Final = 2_000
CHUNKS: Final = 10
TAIL_BATCHES, TAIL_ROWS = 20, 1_000
_U = "(cityHash64(uidx, {salt}) % 1000000) / 1000000."  # a uniform draw per user and salt

_USER_COLUMNS: Final = """
    uidx UInt32, user_id String, registered UInt8, reg_ts DateTime64(3, 'UTC'), partner_id String,
    ancestors Array(String), campaign String, click_id String, sub_id String,
    country LowCardinality(String), device LowCardinality(String), os LowCardinality(String),
    browser LowCardinality(String), referer_host LowCardinality(String), code String"""
_BASE_DDL: Final = f"CREATE TABLE bench.base ({_USER_COLUMNS}) ENGINE = MergeTree ORDER BY uidx"
_USERS_DDL: Final = f"""
CREATE TABLE bench.users ({_USER_COLUMNS},
    account String, has_account UInt8, has_kyc UInt8, deposits UInt32, withdrawals UInt32,
    trade_weight Float64, t_account DateTime64(3, 'UTC'), t_kyc DateTime64(3, 'UTC'),
    t_deposit DateTime64(3, 'UTC'), t_last DateTime64(3, 'UTC')
) ENGINE = MergeTree ORDER BY uidx
"""
_STAGING_DDL: Final = """
CREATE TABLE bench.staging (
    uidx UInt32, event_id String, event_type LowCardinality(String), ts DateTime64(3, 'UTC'),
    amount Decimal(20, 8), lots Decimal(20, 8), commission Decimal(20, 8), markup Decimal(20, 8),
    symbol LowCardinality(String), position_id String, reverses String
) ENGINE = MergeTree ORDER BY (uidx, event_id)
"""
# Registered users: the registrations (topped up to USERS), with their click's dimensions.
_TOP_UP: Final = """
INSERT INTO invite.conversions (event_id, event_type, ts, user_id, ctid_trader_account_id,
    click_id, partner_id, ancestors, campaign, source)
SELECT toString(click_id), 'registration', ts + toIntervalMinute(rand() % 600),
    toString(rand64()), '', toString(click_id), partner_id, ancestors, campaign, 'sso'
FROM invite.clicks
WHERE is_human = 1 AND outcome = 'credited' AND cityHash64(click_id) % 100 = 7
    AND click_id NOT IN (SELECT toUUIDOrZero(click_id) FROM invite.conversions)
LIMIT {missing:UInt64}
"""
_BASE: Final = """
INSERT INTO bench.base
SELECT toUInt32(rowNumberInAllBlocks()), r.user_id, 1, least(r.ts, {end:DateTime64(3, 'UTC')}),
    r.partner_id, r.ancestors, r.campaign, r.click_id, k.sub_id, k.country, k.device, k.os,
    k.browser, k.referer_host, k.code
FROM (SELECT user_id, ts, partner_id, ancestors, campaign, click_id
      FROM invite.conversions FINAL WHERE event_type = 'registration' ORDER BY user_id) AS r
LEFT JOIN (SELECT toString(click_id) AS click_id, sub_id, country, device, os, browser,
                  referer_host, code FROM invite.clicks
           WHERE click_id IN (SELECT toUUIDOrZero(click_id) FROM invite.conversions)) AS k
    USING click_id
"""
_UNKNOWN: Final = """
INSERT INTO bench.base (uidx, user_id, registered, reg_ts)
SELECT {first:UInt32} + number, toString(900000000000 + number), 0,
    {end:DateTime64(3, 'UTC')} - toIntervalSecond(cityHash64(number, 99) % {span_s:UInt64})
FROM numbers({count:UInt32})
"""


def _after(start: str, salt: int, at_most_ms: int) -> str:
    """A time after `start`: a uniform share of at most `at_most_ms` or of what is left to now."""
    return (f"{start} + toIntervalMillisecond(toUInt64({_U.format(salt=salt)} * least("
            f"{at_most_ms}, greatest(1, dateDiff('millisecond', {start}, "
            "{end:DateTime64(3, 'UTC')})))))")


# Each user's plan, from hashes of its index: which steps it reaches and when, how many deposits
# and withdrawals, and the weight of its trades (Pareto, capped).
_USERS: Final = f"""
INSERT INTO bench.users
SELECT *, toString(10000000 + uidx) AS account,
    registered AND {_U.format(salt=1)} < 0.7 AS has_account,
    {_U.format(salt=1)} < 0.7 AND {_U.format(salt=2)} < 0.7 AS has_kyc,
    if(has_kyc AND {_U.format(salt=3)} < 0.5,
       least(300, toUInt32(floor(pow(1 - {_U.format(salt=4)}, -0.8)))), 0) AS deposits,
    if(deposits > 0 AND {_U.format(salt=8)} < 0.4,
       toUInt32(1 + deposits * {_U.format(salt=9)}), 0) AS withdrawals,
    if(deposits > 0 AND {_U.format(salt=10)} < 0.8,
       least(2000., pow(1 - {_U.format(salt=11)}, -1 / 1.1)), 0) AS trade_weight,
    {_after("reg_ts", 5, 3 * 86_400_000)} AS t_account,
    {_after("t_account", 6, 2 * 86_400_000)} AS t_kyc,
    {_after("t_kyc", 7, 5 * 86_400_000)} AS t_deposit,
    t_deposit + toIntervalMillisecond(least(dateDiff('millisecond', t_deposit,
        {{end:DateTime64(3, 'UTC')}}), toInt64((5 + 55 * {_U.format(salt=12)}) * 86400000)))
        AS t_last
FROM bench.base
"""  # noqa: S608
# A trader's days between its first deposit and its last event: its trades are a rate per day of
# them (a trader who first deposited an hour ago has traded for an hour, not for weeks).
_ACTIVE_DAYS: Final = "(dateDiff('millisecond', t_deposit, t_last) / 86400000.)"
# The events of one chunk of users into bench.staging. `n` numbers each user's events of a kind.
_EVENT_TS = ("{start} + toIntervalMillisecond(toUInt64((cityHash64(uidx, n, {salt}) % 1000000) "
             "/ 1000000. * greatest(1, dateDiff('millisecond', {start}, t_last))))")
_STAGE = {
    "account_opened": """
        SELECT uidx, concat('acc-', toString(uidx)), 'account_opened', t_account, 0, 0, 0, 0, '',
            '', '' FROM bench.users WHERE {chunk} AND has_account""",
    "kyc_approved": """
        SELECT uidx, concat('kyc-', toString(uidx)), 'kyc_approved', t_kyc, 0, 0, 0, 0, '', '', ''
        FROM bench.users WHERE {chunk} AND has_kyc""",
    "deposit": f"""
        SELECT uidx, concat('dep-', toString(uidx), '-', toString(n)), 'deposit',
            if(n = 0, t_deposit, {_EVENT_TS.format(start="t_deposit", salt=21)}),
            round(toDecimal128(least(250000, 50 * pow(1 - (cityHash64(uidx, n, 22) % 1000000)
                / 1000000., -1 / 1.3)), 8), 2), 0, 0, 0, '', '', ''
        FROM bench.users ARRAY JOIN range(deposits) AS n WHERE {{chunk}}""",  # noqa: S608
    "withdrawal": f"""
        SELECT uidx, concat('wd-', toString(uidx), '-', toString(n)), 'withdrawal',
            {_EVENT_TS.format(start="t_deposit", salt=31)},
            round(toDecimal128(20 + (cityHash64(uidx, n, 32) % 200000) / 100., 8), 2),
            0, 0, 0, '', '', ''
        FROM bench.users ARRAY JOIN range(withdrawals) AS n WHERE {{chunk}}""",  # noqa: S608
    "trade": f"""
        SELECT uidx, concat('tr-', toString(uidx), '-', toString(n)), 'trade',
            {_EVENT_TS.format(start="t_deposit", salt=41)}, 0, lots,
            round(toDecimal128(toFloat64(lots) * 7, 8), 2),
            round(toDecimal128(toFloat64(lots) * 3 * (cityHash64(uidx, n, 43) % 1000) / 1000.,
                               8), 2),
            ['EURUSD', 'XAUUSD', 'GBPUSD', 'US30', 'USDJPY', 'BTCUSD', 'NAS100', 'AUDUSD']
                [1 + toUInt32(8 * pow((cityHash64(uidx, n, 44) % 1000) / 1000., 2))],
            toString(cityHash64(uidx, n, 45)), ''
        FROM (SELECT *, round(toDecimal128(least(50., 0.01 + 0.1 * pow(1 - (cityHash64(uidx, 42)
                  % 1000000) / 1000000., -1 / 1.5)), 8), 2) AS lots
              FROM bench.users WHERE {{chunk}} AND trade_weight > 0)
        ARRAY JOIN range(toUInt32(round(trade_weight * {_ACTIVE_DAYS}
                                        * {{per_weight:Float64}}))) AS n""",  # noqa: S608
}
_REVERSALS = """
INSERT INTO bench.staging
SELECT uidx, concat('rev-', event_id), 'reversal',
    ts + toIntervalHour(1 + cityHash64(event_id) % 48), 0, 0, 0, 0, '', '', event_id
FROM bench.staging WHERE event_type IN ('deposit', 'trade') AND cityHash64(event_id) % 1000 < 4
"""
# Trades and their reversals name the trading account, the other events the user.
_TO_EVENTS: Final = """
INSERT INTO invite.events (event_id, event_type, ts, user_id, ctid_trader_account_id, amount,
    symbol, lots, commission, markup, position_id, reverses, source, received_at)
SELECT s.event_id, s.event_type, s.ts, if(on_account, '', u.user_id),
    if(on_account OR s.event_type = 'account_opened', u.account, ''), s.amount, s.symbol, s.lots,
    s.commission, s.markup, s.position_id, s.reverses, 'api', s.ts
FROM (SELECT *, event_type = 'trade' OR startsWith(event_id, 'rev-tr-') AS on_account
      FROM bench.staging) AS s
INNER JOIN bench.users AS u USING uidx
"""
# As crediting writes them: one sign-1 row per counted event, the registration's partner and
# click dimensions, reversed ones marked, the earliest deposit not reversed as the FTD.
_TO_CREDITED = """
INSERT INTO invite.events_credited (event_id, event_type, ts, user_id, ctid_trader_account_id,
    partner_id, ancestors, campaign, sub_id, click_id, country, device, os, browser,
    referer_host, amount, lots, broker_revenue, symbol, is_first_deposit, reversed, code, sign)
SELECT s.event_id, s.event_type, s.ts,
    if(s.event_type = 'trade' AND NOT u.has_account, '', u.user_id),
    if(s.event_type IN ('trade', 'account_opened'), u.account, ''),
    u.partner_id, u.ancestors, u.campaign, u.sub_id, u.click_id, u.country, u.device, u.os,
    u.browser, u.referer_host, s.amount, s.lots, s.commission + s.markup, s.symbol,
    s.event_id = f.first_deposit, s.event_id IN (SELECT reverses FROM bench.staging), u.code, 1
FROM bench.staging AS s INNER JOIN bench.users AS u USING uidx
LEFT JOIN (SELECT uidx, argMin(event_id, (ts, event_id)) AS first_deposit FROM bench.staging
           WHERE event_type = 'deposit'
               AND event_id NOT IN (SELECT reverses FROM bench.staging)
           GROUP BY uidx) AS f USING uidx
WHERE s.event_type != 'reversal'
"""
_TAIL: Final = """
INSERT INTO bench.staging
SELECT uidx, concat('tail-', toString({batch:UInt32}), '-', toString(uidx)), 'trade',
    {end:DateTime64(3, 'UTC')} - toIntervalMillisecond(cityHash64(uidx, {batch:UInt32}) % 3600000),
    0, 0.1, 0.7, 0.2, 'EURUSD', toString(cityHash64(uidx, {batch:UInt32})), ''
FROM bench.users WHERE trade_weight > 0
ORDER BY cityHash64(uidx, {batch:UInt32}) LIMIT {rows:UInt32}
"""


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def scalar(client: Client, sql: str, **parameters: object) -> int:
    return int(client.query(sql, parameters=parameters).result_rows[0][0])


def generate_clicks(client: Client, clicks: int, days: int, end: datetime) -> None:
    """Partners, clicks (merged, then a live tail) and USERS registrations."""
    started = time.perf_counter()
    say(f"generating {clicks:,} clicks over {days} days (bench_queries' generator)")
    bench_queries.generate(client, clicks, days, end)
    registered = scalar(client, "SELECT count() FROM invite.conversions")
    if registered < USERS:
        client.command(_TOP_UP, parameters={"missing": USERS - registered})
    registered = scalar(client, "SELECT count() FROM invite.conversions")
    # What the conversions' batcher stores as it writes registrations: their clicks' codes.
    client.command(registration_codes.fill_statement("1"))
    say(f"{registered:,} registered users, the codes of their clicks stored; merging the clicks, "
        f"adding their live tail ({time.perf_counter() - started:.0f} s so far)")
    bench_queries.merge(client)
    bench_queries.add_live_tail(client, end)


def generate_events(client: Client, days: int, end: datetime, events: int) -> None:
    """The registered users' events (and those of UNKNOWN_USERS), in both tables, from scratch."""
    started = time.perf_counter()
    for table in ("events", "events_credited", *ROLLUP_TABLES):  # the views' too: they add up
        client.command(f"TRUNCATE TABLE invite.{table}")
    client.command("CREATE DATABASE IF NOT EXISTS bench")
    for table in ("base", "users", "staging"):
        client.command(f"DROP TABLE IF EXISTS bench.{table}")
    for ddl in (_BASE_DDL, _USERS_DDL, _STAGING_DDL):
        client.command(ddl)
    client.command(_BASE, parameters={"end": end})
    client.command(_UNKNOWN, parameters={"first": USERS, "count": UNKNOWN_USERS, "end": end,
                                         "span_s": days * 86_400})
    client.command(_USERS, parameters={"end": end})
    per_weight = _per_weight(client, events - TAIL_BATCHES * TAIL_ROWS)
    _events_by_chunk(client, per_weight, events, started)
    say("merging events, events_credited and the views on it (what background merges reach)")
    for table in ("events", "events_credited", *ROLLUP_TABLES):
        client.command(f"OPTIMIZE TABLE invite.{table} FINAL")
    for batch in range(TAIL_BATCHES):  # unmerged, as in production
        client.command("TRUNCATE TABLE bench.staging")
        client.command(_TAIL, parameters={"batch": batch, "rows": TAIL_ROWS, "end": end})
        client.command(_TO_EVENTS)
        client.command(_TO_CREDITED)
    say(f"events generated in {time.perf_counter() - started:.0f} s")


def _per_weight(client: Client, target: int) -> float:
    """Trades per unit of trade weight and active day, so that all events add up to `target`."""
    others = scalar(client, "SELECT sum(has_account + has_kyc + deposits + withdrawals) "
                            "FROM bench.users")
    weighted = f"SELECT sum(trade_weight * {_ACTIVE_DAYS}) FROM bench.users"  # noqa: S608
    weight = float(client.query(weighted).result_rows[0][0])
    trades = max(0, int((target - others) / 1.004))  # reversals add 0.4% of deposits and trades
    return trades / weight if weight else 0.0


def _events_by_chunk(client: Client, per_weight: float, target: int,
                     started: float) -> None:
    total_users = scalar(client, "SELECT max(uidx) + 1 FROM bench.users")
    done = 0
    chunk_started = time.perf_counter()
    for index in range(CHUNKS):
        low, high = total_users * index // CHUNKS, total_users * (index + 1) // CHUNKS
        chunk = f"uidx >= {low} AND uidx < {high}"
        client.command("TRUNCATE TABLE bench.staging")
        for sql in _STAGE.values():
            statement = "INSERT INTO bench.staging " + sql.replace("{chunk}", chunk)
            # Bound server-side where the statement names a parameter; without one,
            # clickhouse-connect would %-format it (and the SQL has `%` of its own).
            bound = {"per_weight": per_weight} if "{per_weight" in statement else None
            client.command(statement, parameters=bound)
        client.command(_REVERSALS)
        client.command(_TO_EVENTS)
        client.command(_TO_CREDITED)
        done = scalar(client, "SELECT count() FROM invite.events")
        rate = done / (time.perf_counter() - chunk_started)
        left = max(0, target - done) / rate if rate else 0.0
        say(f"  events {done:>10,} / ~{target:,}  ({rate:,.0f}/s, ETA {left:.0f} s; "
            f"{time.perf_counter() - started:.0f} s in all)")


def describe(client: Client) -> dict[str, int]:
    def count(sql: str) -> int:
        return scalar(client, sql)

    return {
        "clicks": count("SELECT count() FROM invite.clicks"),
        "registered_users": count("SELECT uniqExact(user_id) FROM invite.conversions"),
        "events": count("SELECT count() FROM invite.events"),
        "credited_rows": count("SELECT count() FROM invite.events_credited"),
        "trades": count("SELECT count() FROM invite.events WHERE event_type = 'trade'"),
        "deposits": count("SELECT count() FROM invite.events WHERE event_type = 'deposit'"),
        "depositors": count("SELECT uniqExact(user_id) FROM invite.events "
                            "WHERE event_type = 'deposit'"),
        "traders": count("SELECT uniqExact(ctid_trader_account_id) FROM invite.events "
                         "WHERE event_type = 'trade'"),
        "busiest_trader_trades": count(
            "SELECT max(n) FROM (SELECT count() AS n FROM invite.events "
            "WHERE event_type = 'trade' GROUP BY ctid_trader_account_id)"),
        "reversals": count("SELECT count() FROM invite.events WHERE event_type = 'reversal'"),
        "unattributed_rows": count("SELECT count() FROM invite.events_credited "
                                   "WHERE partner_id = ''"),
    }

