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
# commissions ledger credits its reversal to the same partner), and counts in no figure.
CREDITED_COLUMNS: Final = (*_CREDITED_COLUMNS_7[:-1], ("reversed", "UInt8"), ("sign", "Int8"))

CREDITED_DDL: Final = f"""
    CREATE TABLE IF NOT EXISTS {DATABASE}.events_credited (
        {", ".join(f"{name} {type_name}" for name, type_name in _CREDITED_COLUMNS_7)},
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
        INDEX user_idx user_id TYPE bloom_filter GRANULARITY 4,
        INDEX event_idx event_id TYPE bloom_filter GRANULARITY 4
    )
    ENGINE = CollapsingMergeTree(sign)
    PARTITION BY toYYYYMM(ts)
    ORDER BY (partner_id, event_type, ts, event_id)
"""

MIGRATION_7: Final = (EVENTS_DDL, CREDITED_DDL)
MIGRATION_8_EVENTS: Final = (
    f"ALTER TABLE {DATABASE}.events_credited ADD COLUMN IF NOT EXISTS reversed UInt8 DEFAULT 0 "
    "AFTER is_first_deposit",
)
