"""The data of `make bench-commissions`, generated inside ClickHouse with `INSERT … SELECT … FROM
numbers(…)`, and the ledger's inputs written the way the worker writes them.

10,000 partners in a five-level forest (20 master IBs, 180, 800 and 2,000 sub-IBs, 7,000
affiliates; low-numbered parents get most children), 200,000 users each registered with one of
them (`invite.conversions`: 60% with an affiliate, 3% directly with a master IB; 15% registered
during the month, the others over the ten months before), and the credited events crediting
would have written (`invite.events_credited`, sign 1, the partner and ancestors of the user's
registration) with the raw events beside them (`invite.events`):
- deposits: 85% of the users have a first deposit (`is_first_deposit = 1`, a week or less after
  registering, a fifth of them under the CPA's minimum) and 0 to 3 more during the month;
- trades: `--trades` in the month (and `--history-trades` in the month before, for the tiers)
  by the first 80% of the users, Pareto-like (the busiest makes tens of thousands), on a symbol
  of a realistic head (85%: EURUSD, XAUUSD, indices, crypto…) or a long tail of 370 crosses and
  stock CFDs, 0.01 to 10 lots, broker revenue 3 to 15 per lot;
- one trade in 2,500 reversed: its credited row keeps `reversed = 1`, a `reversal` event in
  `invite.events` a few hours later (within the month).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any, Final

from analytics.clickhouse import Client
from analytics.commissions import inputs
from analytics.commissions.months import end_ms, previous_month, start_ms
from analytics.commissions.plans import parse_terms
from analytics.commissions.store import PlanVersion
from analytics.commissions.timeline import TimelineRow

LEVELS: Final = (("ib1", 20), ("ib2", 180), ("ib3", 800), ("ib4", 2_000), ("aff", 7_000))
# Share of the users registered directly with each level (masters first).
USER_LEVELS: Final = (0.03, 0.05, 0.10, 0.22, 0.60)
DEPOSITORS, TRADERS, NEW_USERS = 0.85, 0.80, 0.15
CHUNK_ROWS: Final = 1_000_000
REVERSED_ONE_IN: Final = 2_500
HEAD: Final = (
    "EURUSD", "XAUUSD", "GBPUSD", "USDJPY", "US30", "NAS100", "BTCUSD", "GBPJPY", "AUDUSD",
    "USDCAD", "EURJPY", "XAGUSD", "USDCHF", "NZDUSD", "EURGBP", "SPX500", "GER40", "ETHUSD",
    "UK100", "USOIL", "UKOIL", "JPN225", "EURAUD", "GBPAUD", "AUDJPY", "CADJPY", "EURCHF",
    "XAUEUR", "USDMXN", "USDZAR",
)
_CURRENCIES: Final = ("EUR", "USD", "GBP", "JPY", "AUD", "CAD", "CHF", "NZD", "SEK", "NOK",
                      "TRY", "PLN", "HKD", "SGD")
PLAN_ID: Final = "std"
PLAN: Final[dict[str, Any]] = {
    "name": "Standard IB 2026",
    "rebates": [
        {"symbols": ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "NZDUSD"],
         "perLot": "6"},
        {"symbols": ["XAU*", "XAG*"], "perLot": "10"},
        {"symbols": ["US30", "NAS100", "SPX500", "GER40", "UK100", "JPN225"], "perLot": "2.5"},
        {"symbols": ["BTC*", "ETH*"], "perLot": "1.5"},
        {"symbols": ["*.US"], "perLot": "0.5"},
        {"symbols": ["*JPY", "EUR*", "GBP*"], "perLot": "4"},
        {"symbols": ["*"], "perLot": "3"},
    ],
    "revenueShare": "0.15",
    "cpa": {"amount": "250", "minFirstDeposit": "100", "minLots": "2", "withinDays": 30},
    "levels": {"mode": "override", "shares": ["1", "0.2", "0.1"]},
    "tiers": [
        {"name": "bronze", "multiplier": "1"},
        {"name": "silver", "multiplier": "1.1", "minActiveTraders": 20, "minLots": "200"},
        {"name": "gold", "multiplier": "1.25", "minActiveTraders": 200, "minLots": "2000",
         "minFirstDeposits": 20},
    ],
}


def _draw(key: str, salt: int) -> str:
    """A uniform draw in [0, 1) from a hash of `key` and a salt (the same on every run)."""
    return f"((cityHash64({key}, {salt}) % 1000000) / 1000000.)"


def _cents(value: str) -> str:
    """A float expression as an exact decimal of cents (no binary fraction left in it)."""
    return f"(toDecimal64(round(({value}) * 100), 8) / 100)"


_USERS_DDL: Final = """
CREATE TABLE IF NOT EXISTS bench.users (
    uidx UInt32, user_id String, reg_ts DateTime64(3, 'UTC'), partner_id String,
    ancestors Array(String), campaign String, click_id String, sub_id String,
    country LowCardinality(String), device LowCardinality(String), os LowCardinality(String),
    browser LowCardinality(String), referer_host LowCardinality(String),
    depositor UInt8, ftd_ts DateTime64(3, 'UTC'), ftd_amount Decimal(20, 8), deposits UInt8
) ENGINE = MergeTree ORDER BY uidx
"""
_USERS: Final = f"""
INSERT INTO bench.users
SELECT uidx, toString(100000000 + uidx), reg_ts, {{ids:Array(String)}}[pidx + 1],
    {{ancestors:Array(Array(String))}}[pidx + 1],
    if(pidx % 5 = 0, '', 'camp-' || toString(pidx % 7)), lower(hex(cityHash64(uidx, 90))),
    if({_draw('uidx', 9)} < 0.3, 'sub-' || toString(cityHash64(uidx, 10) % 40), ''),
    ['DE', 'GB', 'AE', 'NG', 'ZA', 'IN', 'BR', 'TH', 'MY', 'CY', 'FR', 'ES']
        [1 + toUInt32(12 * pow({_draw('uidx', 11)}, 2))],
    ['mobile', 'mobile', 'desktop', 'tablet'][1 + cityHash64(uidx, 12) % 4],
    ['Android', 'iOS', 'Windows', 'Mac OS X', 'Linux'][1 + cityHash64(uidx, 13) % 5],
    ['Chrome', 'Safari', 'Chrome Mobile', 'Firefox', 'Edge'][1 + cityHash64(uidx, 14) % 5],
    ['', '', 't.me', 'google.com', 'facebook.com', 'youtube.com'][1 + cityHash64(uidx, 15) % 6],
    depositor,
    least(reg_ts + toIntervalMillisecond(3600000 + toUInt64({_draw('uidx', 6)} * 6 * 86400000)),
          {{end:DateTime64(3, 'UTC')}} - toIntervalHour(2)),
    {_cents(f"50 + 4950 * pow({_draw('uidx', 7)}, 3)")},
    if(depositor, toUInt8(floor(4 * pow({_draw('uidx', 8)}, 2))), 0)
FROM (
    SELECT number AS uidx, {_draw('number', 1)} AS level_draw,
        arrayFirstIndex(x -> level_draw < x, {{level_bounds:Array(Float64)}}) AS level,
        {{offsets:Array(UInt32)}}[level]
            + toUInt32(floor({{sizes:Array(UInt32)}}[level] * pow({_draw('number', 2)}, 2)))
            AS pidx,
        if({_draw('number', 3)} < {NEW_USERS},
           {{start:DateTime64(3, 'UTC')}}
               + toIntervalMillisecond(toUInt64({_draw('number', 4)} * 0.9 * {{span_ms:UInt64}})),
           {{start:DateTime64(3, 'UTC')}}
               - toIntervalMillisecond(toUInt64((0.02 + {_draw('number', 4)}) * 300 * 86400000)))
            AS reg_ts,
        number < {{depositors:UInt32}} AS depositor
    FROM numbers({{users:UInt32}})
)
"""  # noqa: S608
_REGISTRATIONS: Final = """
INSERT INTO invite.conversions (event_id, event_type, ts, user_id, ctid_trader_account_id,
    click_id, partner_id, ancestors, campaign, source)
SELECT 'reg-' || user_id, 'registration', reg_ts, user_id, '', click_id, partner_id, ancestors,
    campaign, 'sso'
FROM bench.users
"""
_CREDITED_COLUMNS: Final = (
    "event_id, event_type, ts, user_id, ctid_trader_account_id, partner_id, ancestors, campaign, "
    "sub_id, click_id, country, device, os, browser, referer_host, amount, lots, broker_revenue, "
    "symbol, is_first_deposit, reversed, sign")
_USER_COLUMNS: Final = ("u.user_id, 'acc-' || u.user_id, u.partner_id, u.ancestors, u.campaign, "
                        "u.sub_id, u.click_id, u.country, u.device, u.os, u.browser, "
                        "u.referer_host")
# The first deposit (k = 0, whenever it was) and the month's other deposits.
_DEPOSITS: Final = f"""
INSERT INTO invite.events_credited ({_CREDITED_COLUMNS})
SELECT 'dep-' || u.user_id || '-' || toString(k), 'deposit',
    if(k = 0, u.ftd_ts, fromUnixTimestamp64Milli(toInt64(first_ms
        + {_draw('u.uidx, k', 21)} * ({{end_ms:Int64}} - first_ms)), 'UTC')),
    u.user_id, 'acc-' || u.user_id, u.partner_id, u.ancestors, u.campaign, u.sub_id, u.click_id,
    u.country, u.device, u.os, u.browser, u.referer_host,
    if(k = 0, u.ftd_amount, {_cents(f"100 + 1900 * pow({_draw('u.uidx, k', 22)}, 2)")}),
    toDecimal64(0, 8), toDecimal64(0, 8), '', k = 0, 0, 1
FROM bench.users AS u ARRAY JOIN range(u.deposits + 1) AS k
WHERE u.depositor
    AND ((greatest(toUnixTimestamp64Milli(u.ftd_ts), {{start_ms:Int64}}) AS first_ms) > 0)
"""  # noqa: S608
# One chunk of trades in [start_ms, end_ms): a user of the first `traders` (skewed to the
# lowest indexes), at a uniform time after its first deposit.
_TRADES: Final = f"""
INSERT INTO invite.events_credited ({_CREDITED_COLUMNS})
SELECT t.event_id, 'trade', fromUnixTimestamp64Milli(toInt64(first_ms
        + t.at * ({{end_ms:Int64}} - first_ms)), 'UTC'),
    {_USER_COLUMNS},
    toDecimal64(0, 8), t.lots, {_cents('toFloat64(t.lots) * (3 + 12 * t.rate)')},
    t.symbol, 0, t.reversed, 1
FROM (
    SELECT {{prefix:String}} || toString(number) AS event_id,
        toUInt32(floor({{traders:UInt32}} * pow({_draw('number', 31)}, 2.2))) AS uidx,
        {_draw('number', 32)} AS at, {_draw('number', 33)} AS rate,
        {_cents(f"0.01 * (1 + floor(1000 * pow({_draw('number', 34)}, 6)))")} AS lots,
        if({_draw('number', 35)} < 0.85,
           {{head:Array(String)}}[1 + toUInt32(floor(length({{head:Array(String)}})
                                                      * pow({_draw('number', 36)}, 1.6)))],
           {{tail:Array(String)}}[1 + toUInt32(floor(length({{tail:Array(String)}})
                                                      * pow({_draw('number', 36)}, 1.5)))])
            AS symbol,
        toUInt8(cityHash64(number, 37) % {REVERSED_ONE_IN} = 0) AS reversed
    FROM numbers({{offset:UInt64}}, {{rows:UInt64}})
) AS t INNER JOIN bench.users AS u ON u.uidx = t.uidx
WHERE (greatest(toUnixTimestamp64Milli(u.ftd_ts) + 60000, {{start_ms:Int64}}) AS first_ms)
    < {{end_ms:Int64}}
"""  # noqa: S608
# The raw events beside the credited rows (commission + markup = broker revenue).
_RAW_EVENTS: Final = """
INSERT INTO invite.events (event_id, event_type, ts, user_id, ctid_trader_account_id, amount,
    original_amount, original_currency, symbol, lots, commission, markup, position_id, opened_at,
    reverses, source, received_at)
SELECT event_id, event_type, ts, user_id, ctid_trader_account_id, amount, amount, 'USD', symbol,
    lots, toDecimal64(round(toFloat64(broker_revenue) * 40), 8) / 100 AS commission,
    broker_revenue - commission, if(event_type = 'trade', event_id, ''),
    ts - toIntervalMinute(cityHash64(event_id) % 600), '', 'api', ts + toIntervalSecond(2)
FROM invite.events_credited
WHERE ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')} AND sign = 1
"""
_REVERSALS: Final = """
INSERT INTO invite.events (event_id, event_type, ts, user_id, ctid_trader_account_id, amount,
    original_amount, original_currency, symbol, lots, commission, markup, position_id, opened_at,
    reverses, source, received_at)
SELECT 'rev-' || event_id, 'reversal',
    least(ts + toIntervalHour(1 + cityHash64(event_id) % 48),
          {end:DateTime64(3, 'UTC')} - toIntervalMillisecond(1)) AS at,
    user_id, ctid_trader_account_id, 0, 0, '', '', 0, 0, 0, '', at, event_id, 'api', at
FROM invite.events_credited WHERE reversed = 1 AND event_type = 'trade' AND sign = 1
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def forest() -> tuple[list[str], list[list[str]]]:
    """Partner ids and their ancestors (root first), level by level, masters first."""
    ids: list[str] = []
    ancestors: list[list[str]] = []
    above = range(0)
    for prefix, count in LEVELS:
        level = range(len(ids), len(ids) + count)
        for i in range(count):
            if above:
                parent = above.start + int(len(above) * (i / count) ** 2)
                ancestors.append([*ancestors[parent], ids[parent]])
            else:
                ancestors.append([])
            ids.append(f"{prefix}-{i:05d}")
        above = level
    return ids, ancestors


def tail_symbols() -> list[str]:
    """The long tail: 170 crosses of less traded currencies, then 200 stock CFDs."""
    crosses = [a + b for a in _CURRENCIES for b in _CURRENCIES if a != b and a + b not in HEAD]
    return crosses[:170] + [f"S{n:03d}.US" for n in range(200)]


def month_bounds(period: str) -> dict[str, Any]:
    first, after = start_ms(period), end_ms(period)
    return {"start": datetime.fromtimestamp(first / 1000, UTC),
            "end": datetime.fromtimestamp(after / 1000, UTC),
            "start_ms": first, "end_ms": after, "span_ms": after - first}


def generate(client: Client, period: str, users: int, trades: int, history_trades: int) -> None:
    ids, ancestors = forest()
    month = month_bounds(period)
    before = month_bounds(previous_month(period))
    sizes = [count for _, count in LEVELS]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    level_bounds = [sum(USER_LEVELS[: i + 1]) for i in range(len(USER_LEVELS) - 1)] + [2.0]
    client.command("CREATE DATABASE IF NOT EXISTS bench")
    client.command(_USERS_DDL)
    client.command(_USERS, parameters={
        "ids": ids, "ancestors": ancestors, "level_bounds": level_bounds, "sizes": sizes,
        "offsets": offsets, "users": users, "depositors": int(users * DEPOSITORS), **month})
    client.command(_REGISTRATIONS)
    say(f"  {users:,} users registered with {len(ids):,} partners")
    # First deposits whenever they were; the month's other deposits.
    client.command(_DEPOSITS, parameters=month)
    say("  deposits written")
    for name, bounds, count in (("history", before, history_trades), ("month", month, trades)):
        prefix = f"t{bounds['start']:%Y%m}-"
        for offset in range(0, count, CHUNK_ROWS):
            started = time.perf_counter()
            client.command(_TRADES, parameters={
                **bounds, "prefix": prefix, "offset": offset,
                "rows": min(CHUNK_ROWS, count - offset), "traders": int(users * TRADERS),
                "head": list(HEAD), "tail": tail_symbols()})
            say(f"  {name} trades {min(offset + CHUNK_ROWS, count):>11,} / {count:,}  "
                f"({time.perf_counter() - started:.1f} s)")
    copy_raw_events(client, before["start_ms"], month["end_ms"])
    client.command(_REVERSALS, parameters=month)


def copy_raw_events(client: Client, first_ms: int, after_ms: int) -> None:
    """The raw events of the credited rows in [first_ms, after_ms), a day at a time."""
    days = range(first_ms, after_ms, 86_400_000)
    for done, day in enumerate(days, start=1):
        client.command(_RAW_EVENTS, parameters={
            "from": datetime.fromtimestamp(day / 1000, UTC),
            "to": datetime.fromtimestamp(min(day + 86_400_000, after_ms) / 1000, UTC)})
        if done % 10 == 0 or done == len(days):
            say(f"  raw events: day {done} / {len(days)}")
    # Deposits before the months above (first deposits of older users).
    client.command(_RAW_EVENTS, parameters={
        "from": datetime.fromtimestamp(0, UTC), "to": datetime.fromtimestamp(first_ms / 1000, UTC)})


def merge(client: Client) -> None:
    for table in ("events_credited", "events", "conversions"):
        client.command(f"OPTIMIZE TABLE invite.{table} FINAL")


def plan_version() -> PlanVersion:
    return PlanVersion(PLAN_ID, 1, 0, 0, parse_terms(PLAN, PLAN_ID))


def timeline() -> list[TimelineRow]:
    """Every partner from the beginning of time: itself then its ancestors, all active."""
    ids, ancestors = forest()
    rows = []
    for partner_id, above in zip(ids, ancestors, strict=True):
        chain = (partner_id, *reversed(above))
        rows.append(TimelineRow(partner_id, 0, chain, ("active",) * len(chain),
                                ("",) * len(chain), PLAN_ID, 1))
    return rows


def write_inputs(client: Client, period: str) -> dict[str, float]:
    """The timeline, the plan and its rebates, and the month's tiers; seconds of each."""
    plans = {PLAN_ID: [plan_version()]}
    took: dict[str, float] = {}
    started = time.perf_counter()
    inputs.write_timeline(client, timeline())
    took["timeline"] = time.perf_counter() - started
    started = time.perf_counter()
    inputs.write_plans(client, plans, inputs.traded_symbols(client))
    took["plans"] = time.perf_counter() - started
    started = time.perf_counter()
    inputs.write_tiers(client, period, plans)
    took["tiers"] = time.perf_counter() - started
    return took


# New trades, one per chosen user, within an hour after `at`: the credited rows and the raw events.
_NEW_TRADES: Final = f"""
SELECT {{prefix:String}} || toString(u.uidx) AS event_id, 'trade' AS event_type,
    {{at:DateTime64(3, 'UTC')}} + toIntervalMillisecond(cityHash64(u.uidx, {{salt:UInt64}})
                                                       % 3600000) AS ts,
    u.user_id AS user_id, 'acc-' || u.user_id AS ctid_trader_account_id, u.partner_id AS partner_id,
    u.ancestors AS ancestors, u.campaign AS campaign, u.sub_id AS sub_id, u.click_id AS click_id,
    u.country AS country, u.device AS device, u.os AS os, u.browser AS browser,
    u.referer_host AS referer_host, toDecimal64(0, 8) AS amount,
    {_cents(f"0.01 * (1 + floor(300 * pow({_draw('u.uidx, {salt:UInt64}', 1)}, 4)))")} AS lots,
    lots * 9 AS broker_revenue,
    {{head:Array(String)}}[1 + cityHash64(u.uidx, {{salt:UInt64}}, 2)
                                % length({{head:Array(String)}})] AS symbol,
    toUInt8(0) AS is_first_deposit, toUInt8(0) AS reversed, toInt8(1) AS sign
FROM bench.users AS u WHERE u.user_id IN {{users:Array(String)}}
"""  # noqa: S608
_NEW_RAW: Final = f"""
INSERT INTO invite.events (event_id, event_type, ts, user_id, ctid_trader_account_id, amount,
    original_amount, original_currency, symbol, lots, commission, markup, position_id, opened_at,
    reverses, source, received_at)
SELECT event_id, event_type, ts, user_id, ctid_trader_account_id, amount, amount, 'USD', symbol,
    lots, toDecimal64(0, 8), broker_revenue, event_id, ts, '', 'api', ts
FROM ({_NEW_TRADES})
"""  # noqa: S608
_NEW_CREDITED: Final = f"""
INSERT INTO invite.events_credited ({_CREDITED_COLUMNS})
SELECT {_CREDITED_COLUMNS} FROM ({_NEW_TRADES})
"""  # noqa: S608


def pick_users(client: Client, count: int, salt: int) -> list[str]:
    """`count` distinct traders, a different draw for every salt."""
    rows = client.query(
        "SELECT user_id FROM bench.users WHERE uidx < {traders:UInt32} "
        "ORDER BY cityHash64(uidx, {salt:UInt64}) LIMIT {count:UInt32}",
        parameters={"traders": int(users_count(client) * TRADERS), "salt": salt,
                    "count": count}).result_rows
    return [str(row[0]) for row in rows]


def users_count(client: Client) -> int:
    return int(client.query("SELECT count() FROM bench.users").result_rows[0][0])


def insert_new_trades(client: Client, users: list[str], at: datetime, prefix: str,
                      salt: int) -> None:
    """A trade of each user within the hour after `at`, as the batcher (raw event) and then
    crediting (credited row, sign 1) write them."""
    parameters = {"users": users, "at": at, "prefix": prefix, "salt": salt, "head": list(HEAD)}
    client.command(_NEW_RAW, parameters=parameters)
    client.command(_NEW_CREDITED, parameters=parameters)


def event_ids(client: Client, prefix: str) -> list[str]:
    rows = client.query("SELECT event_id FROM invite.events_credited "
                        "WHERE startsWith(event_id, {prefix:String})",
                        parameters={"prefix": prefix}).result_rows
    return [str(row[0]) for row in rows]
