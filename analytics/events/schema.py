"""The funnel events' tables (schema migration 7).

`events` keeps each event as the broker sent it, one row per `event_id`. `events_credited` holds,
per event that counts in a figure, the partner it is credited to at its time with that partner's
ancestors and the registration click's campaign, sub-ID and dimensions: a CollapsingMergeTree, so
that re-crediting (a registration that arrives after the deposits, a reversal, a new account
mapping) writes a cancelling row and a new one, and every sum reads `sum(sign * …)`.
"""

from __future__ import annotations

from typing import Final

DATABASE: Final = "invite"
MONEY: Final = "Decimal(20, 8)"

EVENTS_DDL: Final = f"""
    CREATE TABLE IF NOT EXISTS {DATABASE}.events (
        event_id               String,
        event_type             LowCardinality(String),
        ts                     DateTime64(3, 'UTC'),
        user_id                String,
        ctid_trader_account_id String,
        amount                 {MONEY},
        original_amount        {MONEY},
        original_currency      LowCardinality(String),
        symbol                 LowCardinality(String),
        lots                   {MONEY},
        commission             {MONEY},
        markup                 {MONEY},
        position_id            String,
        opened_at              DateTime64(3, 'UTC'),
        reverses               String,
        source                 LowCardinality(String),
        received_at            DateTime64(3, 'UTC'),
        inserted_at            DateTime64(3, 'UTC') DEFAULT now64(3),
        INDEX inserted_idx inserted_at TYPE minmax GRANULARITY 1,
        INDEX account_idx ctid_trader_account_id TYPE bloom_filter GRANULARITY 4,
        INDEX event_idx event_id TYPE bloom_filter GRANULARITY 4
    )
    ENGINE = ReplacingMergeTree(inserted_at)
    PARTITION BY toYYYYMM(ts)
    ORDER BY (user_id, ctid_trader_account_id, event_id)
    SETTINGS non_replicated_deduplication_window = 1000
"""

# Migration 7's columns as released; migration 8 adds `reversed` before `sign`.
_CREDITED_COLUMNS_7: Final = (
    ("event_id", "String"),
    ("event_type", "LowCardinality(String)"),
    ("ts", "DateTime64(3, 'UTC')"),
    ("user_id", "String"),
    ("ctid_trader_account_id", "String"),
    ("partner_id", "String"),
    ("ancestors", "Array(String)"),
    ("campaign", "String"),
    ("sub_id", "String"),
    ("click_id", "String"),
    ("country", "LowCardinality(String)"),
    ("device", "LowCardinality(String)"),
    ("os", "LowCardinality(String)"),
    ("browser", "LowCardinality(String)"),
    ("referer_host", "LowCardinality(String)"),
    ("amount", MONEY),
    ("lots", MONEY),
    ("broker_revenue", MONEY),
    ("symbol", "LowCardinality(String)"),
    ("is_first_deposit", "UInt8"),
    ("sign", "Int8"),
)
# What crediting writes: a reversed deposit or trade keeps its row with `reversed = 1` (the
# commissions ledger credits its reversal to the same partner), and counts in no figure;
# `code` (migration 12) is the link code of the registration's click, for the breakdown by link.
CREDITED_COLUMNS: Final = (
    *_CREDITED_COLUMNS_7[:-1], ("reversed", "UInt8"), ("code", "String"), ("sign", "Int8"),
)


def _credited_ddl(table: str, columns: tuple[tuple[str, str], ...]) -> str:
    return f"""
    CREATE TABLE IF NOT EXISTS {DATABASE}.{table} (
        {", ".join(f"{name} {type_name}" for name, type_name in columns)},
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
        INDEX user_idx user_id TYPE bloom_filter GRANULARITY 4,
        INDEX event_idx event_id TYPE bloom_filter GRANULARITY 4
    )
    ENGINE = CollapsingMergeTree(sign)
    PARTITION BY toYYYYMM(ts)
    ORDER BY (partner_id, event_type, ts, event_id)
"""


CREDITED_DDL: Final = _credited_ddl("events_credited", _CREDITED_COLUMNS_7)

MIGRATION_7: Final = (EVENTS_DDL, CREDITED_DDL)
MIGRATION_8_EVENTS: Final = (
    f"ALTER TABLE {DATABASE}.events_credited ADD COLUMN IF NOT EXISTS reversed UInt8 DEFAULT 0 "
    "AFTER is_first_deposit",
)

# Migration 11: what the funnel's questions read (docs/benchmarks.md, "Funnel events"), kept by
# materialized views on `events_credited` from the rows that count in a figure (reversed events
# and events credited to no partner left out):
# - `events_hourly`, `events_daily`: a row per (bucket, event type, user and what the user's
#   events are credited with) holding the sums of the rows' signed counts and amounts. Every
#   figure is linear in `sign`, so the views add up the cancelling rows crediting writes, and a
#   row whose events were all cancelled sums to nothing (dropped when the engine merges). Once
#   merged, each row is a user's live events in its bucket, so a distinct count is the users with
#   `events > 0`: counted by `user_key` (the numeric userId, cheaper to count than its text).
#   A month's rows are read as they are where its parts cannot hold the same row twice, summed
#   per user where they can (analytics.events.rollups): FINAL, which merges while reading, costs
#   50 ms for a day's rows here.
# - `events_downline_hourly`, `events_downline_daily`: the same per partner on the chain of the
#   events' partner (`ancestor_id`: each of its ancestors and itself), for a subtree's questions.
# - `events_by_time`: the same rows as `events_credited`, ordered by time, for the partial hours
#   at the ends of a range (read with `sum(sign * …)` per user, like `events_credited`).
# - `events_by_user`: each user's live events over all time (the funnel of the clicks' cohort).
ROLLUP_SUMS: Final = (
    ("events", "Int64", "c.sign"),
    ("first_deposits", "Int64", "c.sign * c.is_first_deposit"),
    ("amount", "Decimal(38, 8)", "c.sign * c.amount"),
    ("first_deposit_amount", "Decimal(38, 8)", "c.sign * c.is_first_deposit * c.amount"),
    ("lots", "Decimal(38, 8)", "c.sign * c.lots"),
    ("broker_revenue", "Decimal(38, 8)", "c.sign * c.broker_revenue"),
)
_ROLLUP_KEYS_11: Final = (
    "event_type", "partner_id", "user_id", "click_id", "campaign", "sub_id", "country", "device",
    "os", "browser", "referer_host", "ancestors",
)
# Migration 12 adds the link code (a click's code: after click_id, it changes no row's place).
ROLLUP_KEYS: Final = (*_ROLLUP_KEYS_11[:4], "code", *_ROLLUP_KEYS_11[4:])
_TYPES: Final = dict(CREDITED_COLUMNS)
# Credited rows that count in a figure (the views hold no others).
COUNTED: Final = "partner_id != '' AND reversed = 0"
# A userId is a whole number below 2**63 (the contract): the number itself. Any other text gets
# its hash with the top bit set, so it never takes a number's key.
USER_KEY_OF_ROW: Final = (
    "if(toUInt64OrZero(user_id) BETWEEN 1 AND 9223372036854775807, "
    "toUInt64OrZero(user_id), bitOr(cityHash64(user_id), 9223372036854775808))"
)
USER_KEY: Final = f"user_key UInt64 MATERIALIZED {USER_KEY_OF_ROW}"


def _rollup_ddl(table: str, bucket: str, bucket_type: str, keys: tuple[str, ...], *,
                downline: bool = False) -> str:
    """`downline`: a row per partner on the event's chain (its ancestors and its own partner),
    `ancestor_id` first in the key, so that a subtree is one primary-key range."""
    first = ["ancestor_id String"] if downline else []
    columns = ", ".join([
        f"{bucket} {bucket_type}", *first, *(f"{key} {_TYPES[key]}" for key in keys),
        *(f"{name} {type_name}" for name, type_name, _ in ROLLUP_SUMS), USER_KEY,
    ])
    sums = ", ".join(name for name, _, _ in ROLLUP_SUMS)
    order = ["ancestor_id"] if downline else []
    return (
        f"CREATE TABLE IF NOT EXISTS {DATABASE}.{table} ({columns}) "
        f"ENGINE = SummingMergeTree(({sums})) PARTITION BY toYYYYMM({bucket}) "
        f"ORDER BY ({', '.join([*order, bucket, *keys])})"
    )


def _rollup_select(bucket: str, expression: str, keys: tuple[str, ...], *,
                   downline: bool = False) -> str:
    grouped = ", ".join([*(["ancestor_id"] if downline else []), *keys])
    sums = ", ".join(f"sum({value}) AS {name}" for name, _, value in ROLLUP_SUMS)
    chain = (" ARRAY JOIN arrayPushBack(c.ancestors, c.partner_id) AS ancestor_id"
             if downline else "")
    return (
        f"SELECT {expression} AS {bucket}, {grouped}, {sums} FROM {{source}} AS c{chain} "
        f"WHERE {COUNTED} GROUP BY {bucket}, {grouped}"
    )


def _by_time_columns(keys: tuple[str, ...]) -> tuple[str, ...]:
    return ("ts", "event_id", *keys, "amount", "lots", "broker_revenue", "is_first_deposit",
            "sign")


def _by_time_ddl(keys: tuple[str, ...]) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {DATABASE}.events_by_time ("
        + ", ".join(f"{name} {_TYPES[name]}" for name in _by_time_columns(keys))
        + ") ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (ts, event_id)"
    )


def _by_time_select(keys: tuple[str, ...]) -> str:
    return f"SELECT {', '.join(_by_time_columns(keys))} FROM {{source}} WHERE {COUNTED}"


_BY_USER_DDL: Final = (
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.events_by_user (user_id String, "
    "event_type LowCardinality(String), events Int64, first_deposits Int64) "
    "ENGINE = SummingMergeTree((events, first_deposits)) ORDER BY (user_id, event_type)"
)
_BY_USER_SELECT: Final = (
    "SELECT user_id, event_type, sum(c.sign) AS events, sum(c.sign * c.is_first_deposit) AS "
    "first_deposits FROM {source} AS c WHERE reversed = 0 GROUP BY user_id, event_type"
)


def event_rollups(keys: tuple[str, ...] = ROLLUP_KEYS) -> tuple[tuple[str, str, str], ...]:
    """(table, DDL, SELECT reading {source}) of each view on events_credited, keyed by `keys`."""
    return (
        ("events_hourly", _rollup_ddl("events_hourly", "hour", "DateTime('UTC')", keys),
         _rollup_select("hour", "toStartOfHour(ts)", keys)),
        ("events_daily", _rollup_ddl("events_daily", "day", "Date", keys),
         _rollup_select("day", "toDate(ts)", keys)),
        ("events_downline_hourly",
         _rollup_ddl("events_downline_hourly", "hour", "DateTime('UTC')", keys, downline=True),
         _rollup_select("hour", "toStartOfHour(ts)", keys, downline=True)),
        ("events_downline_daily",
         _rollup_ddl("events_downline_daily", "day", "Date", keys, downline=True),
         _rollup_select("day", "toDate(ts)", keys, downline=True)),
        ("events_by_time", _by_time_ddl(keys), _by_time_select(keys)),
        ("events_by_user", _BY_USER_DDL, _BY_USER_SELECT),
    )


EVENT_ROLLUPS: Final = event_rollups()
ROLLUP_TABLES: Final = tuple(table for table, _, _ in EVENT_ROLLUPS)


def rebuild_statements(keys: tuple[str, ...] = ROLLUP_KEYS) -> tuple[str, ...]:
    """Each view (re)made and its table recomputed from `events_credited`, then merged (FINAL
    reads of merged parts cost nothing more); rerunnable. Run it with the batchers stopped: rows
    credited meanwhile may be counted twice."""
    source = f"{DATABASE}.events_credited"
    statements: list[str] = []
    for table, ddl, select in event_rollups(keys):
        statements += [
            f"DROP VIEW IF EXISTS {DATABASE}.{table}_mv",
            f"DROP TABLE IF EXISTS {DATABASE}.{table}", ddl,
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}.{table}_mv TO {DATABASE}.{table} "
            f"AS {select.format(source=source)}",
            f"INSERT INTO {DATABASE}.{table} {select.format(source=source)}",
            f"OPTIMIZE TABLE {DATABASE}.{table} FINAL",
        ]
    return tuple(statements)


# As released: migration 12 makes the views again with the link code.
MIGRATION_11_EVENTS: Final = rebuild_statements(_ROLLUP_KEYS_11)

# Migration 12: `events_credited.code`, the link code of the registration's click. The table is
# copied with each row's code looked up in `clicks` (by the click ids it names; a click that
# retention dropped leaves ''), then swapped in, and the views are made again with the code
# (a breakdown by link reads them like a breakdown by campaign). The views are dropped first, so
# the copy feeds none of them. Every step may run again if the migration was interrupted.
_CREDITED_12: Final = "events_credited_12"
_COPIED: Final = ", ".join(name for name, _ in CREDITED_COLUMNS)
_COPIED_FROM: Final = ", ".join("k.code" if name == "code" else f"c.{name}"
                                for name, _ in CREDITED_COLUMNS)
MIGRATION_12_EVENTS: Final = (
    *(f"DROP VIEW IF EXISTS {DATABASE}.{table}_mv" for table in ROLLUP_TABLES),
    f"DROP TABLE IF EXISTS {DATABASE}.{_CREDITED_12}",
    _credited_ddl(_CREDITED_12, CREDITED_COLUMNS),
    f"INSERT INTO {DATABASE}.{_CREDITED_12} ({_COPIED}, inserted_at) "
    f"SELECT {_COPIED_FROM}, c.inserted_at "
    f"FROM {DATABASE}.events_credited AS c LEFT JOIN ("
    f"SELECT toString(click_id) AS click_id, any(code) AS code FROM {DATABASE}.clicks "
    f"WHERE click_id IN (SELECT toUUIDOrZero(click_id) FROM {DATABASE}.events_credited "
    "WHERE click_id != '') GROUP BY click_id) AS k ON c.click_id = k.click_id",
    f"EXCHANGE TABLES {DATABASE}.events_credited AND {DATABASE}.{_CREDITED_12}",
    f"DROP TABLE {DATABASE}.{_CREDITED_12}",
    *rebuild_statements(),
)
