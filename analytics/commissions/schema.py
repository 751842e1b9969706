"""The commissions tables (schema migration 9).

`commissions` is the ledger: one row per line (ReplacingMergeTree on `computed_at`, a line that
no longer holds is replaced by a row with `is_deleted = 1`; read it with FINAL), partitioned by
period so that a month is computed again beside the live one and swapped in whole. The other
tables are the inputs the ledger's statements join: each partner over time, the plan versions,
the rebate each symbol earns under each version, each partner's tier per month.
"""

from __future__ import annotations

from typing import Final

DATABASE: Final = "invite"
BASE: Final = "Decimal(38, 16)"  # exact: lots (8 places) times a per-lot rate (8 places)
FACTOR: Final = "Decimal(38, 16)"
AMOUNT: Final = "Decimal(38, 2)"

LINE_COLUMNS: Final = (
    ("line_id", "String"),
    ("period", "String"),
    ("ts", "DateTime64(3, 'UTC')"),
    ("partner_id", "String"),
    ("level", "UInt8"),
    ("source_partner_id", "String"),
    ("user_id", "String"),
    ("event_id", "String"),
    ("kind", "LowCardinality(String)"),
    ("base", BASE),
    ("rate", FACTOR),
    ("multiplier", FACTOR),
    ("amount", AMOUNT),
    ("currency", "LowCardinality(String)"),
    ("plan_id", "String"),
    ("plan_version", "UInt32"),
    ("tier", "LowCardinality(String)"),
    ("status", "LowCardinality(String)"),
    ("excluded", "LowCardinality(String)"),
    ("reverses", "String"),
    ("adjusts", "String"),
    ("adjusts_period", "String"),
    ("computed_at", "DateTime64(3, 'UTC')"),
    ("is_deleted", "UInt8"),
)
LINE_NAMES: Final = tuple(name for name, _ in LINE_COLUMNS)
_LINE_DDL: Final = ", ".join(f"{name} {type_name}" for name, type_name in LINE_COLUMNS)


def ledger_ddl(table: str) -> str:
    """The ledger's table, or one shaped like it (a month is built in `commissions_staging` and
    swapped in with REPLACE PARTITION, which needs the same structure)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {DATABASE}.{table} ({_LINE_DDL}) "
        "ENGINE = ReplacingMergeTree(computed_at, is_deleted) PARTITION BY period "
        "ORDER BY (partner_id, line_id)"
    )


MIGRATION_9: Final = (
    ledger_ddl("commissions"),
    ledger_ddl("commissions_staging"),
    # Lines computed for a set of users or events, compared with the ledger before writing.
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.commissions_scratch ({_LINE_DDL}) "
    "ENGINE = MergeTree ORDER BY (user_id, line_id)",
    f"""
    CREATE TABLE IF NOT EXISTS {DATABASE}.commission_timeline (
        partner_id   String,
        valid_from   DateTime64(3, 'UTC'),
        chain        Array(String),
        chain_status Array(String),
        chain_ctid   Array(String),
        plan_id      String,
        plan_version UInt32
    ) ENGINE = MergeTree ORDER BY (partner_id, valid_from)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {DATABASE}.commission_plans (
        plan_id               String,
        version               UInt32,
        effective_from        DateTime64(3, 'UTC'),
        name                  String,
        revenue_share         {FACTOR},
        has_cpa               UInt8,
        cpa_amount            {BASE},
        cpa_min_first_deposit {BASE},
        cpa_min_lots          {BASE},
        cpa_within_days       UInt32,
        shares                Array({FACTOR}),
        base_tier             String,
        base_multiplier       {FACTOR},
        body                  String
    ) ENGINE = MergeTree ORDER BY (plan_id, version)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {DATABASE}.commission_rebates (
        plan_id      String,
        plan_version UInt32,
        symbol       String,
        per_lot      {BASE}
    ) ENGINE = MergeTree ORDER BY (plan_id, plan_version, symbol)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {DATABASE}.commission_tiers (
        period       String,
        partner_id   String,
        plan_id      String,
        plan_version UInt32,
        tier         String,
        multiplier   {FACTOR},
        active_traders UInt64,
        lots         {BASE},
        first_deposits UInt64
    ) ENGINE = MergeTree PARTITION BY period ORDER BY (partner_id, plan_id, plan_version)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {DATABASE}.commission_periods (
        period     String,
        status     LowCardinality(String),
        closed_at  DateTime64(3, 'UTC'),
        paid_at    DateTime64(3, 'UTC'),
        reference  String,
        updated_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(updated_at) ORDER BY period
    """,
)
