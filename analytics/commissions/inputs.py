"""What the ledger's statements join, written to ClickHouse: the partners over time, the plan
versions, the rebate each traded symbol earns under each version, and each partner's tier.

A partner's tier for a month is the highest of its plan's tiers whose thresholds its whole
downline met in the previous calendar month: active traders (users with a trade not reversed),
lots, first-time deposits. Partners with no such figures get the tier that zeros meet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics.commissions.months import end_ms, previous_month, start_ms
from analytics.commissions.plans import Terms
from analytics.commissions.schema import BASE, DATABASE, FACTOR
from analytics.commissions.store import PlanVersion
from analytics.commissions.timeline import TimelineRow

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
_TIMELINE_TYPES: Final = ("String", "DateTime64(3, 'UTC')", "Array(String)", "Array(String)",
                          "Array(String)", "String", "UInt32")
_PLAN_COLUMNS: Final = (
    ("plan_id", "String"), ("version", "UInt32"), ("effective_from", "DateTime64(3, 'UTC')"),
    ("name", "String"), ("revenue_share", FACTOR), ("has_cpa", "UInt8"), ("cpa_amount", BASE),
    ("cpa_min_first_deposit", BASE), ("cpa_min_lots", BASE), ("cpa_within_days", "UInt32"),
    ("shares", f"Array({FACTOR})"), ("base_tier", "String"), ("base_multiplier", FACTOR),
    ("body", "String"),
)
_TIER_COLUMNS: Final = (
    ("period", "String"), ("partner_id", "String"), ("plan_id", "String"),
    ("plan_version", "UInt32"), ("tier", "String"), ("multiplier", FACTOR),
    ("active_traders", "UInt64"), ("lots", BASE), ("first_deposits", "UInt64"),
)


def _insert(client: Client, table: str, rows: Sequence[Sequence[Any]],
            columns: Sequence[tuple[str, str]]) -> None:
    if rows:
        client.insert(f"{DATABASE}.{table}", [list(row) for row in rows],
                      column_names=[name for name, _ in columns],
                      column_type_names=[type_name for _, type_name in columns])


def write_timeline(client: Client, rows: Sequence[TimelineRow]) -> None:
    client.command(f"TRUNCATE TABLE {DATABASE}.commission_timeline")
    names = ("partner_id", "valid_from", "chain", "chain_status", "chain_ctid", "plan_id",
             "plan_version")
    _insert(client, "commission_timeline", [row.values() for row in rows],
            list(zip(names, _TIMELINE_TYPES, strict=True)))


def base_tier(terms: Terms) -> tuple[str, Decimal]:
    """The tier (and multiplier) of a partner whose downline did nothing last month."""
    tier = terms.tier(0, ZERO, 0)
    return (tier.name, tier.multiplier) if tier is not None else ("", ONE)


def write_plans(client: Client, plans: Mapping[str, Sequence[PlanVersion]],
                symbols: Sequence[str]) -> None:
    """The plan versions, and for each version the per-lot rebate of every symbol traded."""
    client.command(f"TRUNCATE TABLE {DATABASE}.commission_plans")
    client.command(f"TRUNCATE TABLE {DATABASE}.commission_rebates")
    plan_rows: list[tuple[Any, ...]] = []
    rebate_rows: list[tuple[Any, ...]] = []
    for plan_id, versions in plans.items():
        for version in versions:
            terms = version.terms
            cpa = terms.cpa
            tier, multiplier = base_tier(terms)
            plan_rows.append((
                plan_id, version.version, version.effective_from, terms.name,
                terms.revenue_share or ZERO, int(cpa is not None),
                cpa.amount if cpa else ZERO, cpa.min_first_deposit if cpa else ZERO,
                cpa.min_lots if cpa else ZERO, (cpa.within_days or 0) if cpa else 0,
                list(terms.shares), tier, multiplier, "",
            ))
            for symbol in symbols:
                per_lot = terms.per_lot(symbol)
                if per_lot:
                    rebate_rows.append((plan_id, version.version, symbol, per_lot))
    _insert(client, "commission_plans", plan_rows, _PLAN_COLUMNS)
    _insert(client, "commission_rebates", rebate_rows, (
        ("plan_id", "String"), ("plan_version", "UInt32"), ("symbol", "String"),
        ("per_lot", BASE)))


def traded_symbols(client: Client) -> list[str]:
    rows = client.query(
        f"SELECT DISTINCT symbol FROM {DATABASE}.events_credited WHERE event_type = 'trade'"
    ).result_rows
    return sorted(str(row[0]) for row in rows)


def downline_figures(client: Client, period: str) -> dict[str, tuple[int, Decimal, int]]:
    """partner → (active traders, lots, first deposits) of its whole downline (itself
    included) in the month, from the credited events that count."""
    rows = client.query(
        "SELECT earner, countIf(event_type = 'trade' AND n > 0), "
        "sumIf(n_lots, event_type = 'trade'), sumIf(n_ftd, event_type = 'deposit') FROM ("
        "SELECT arrayJoin(arrayPushBack(ancestors, partner_id)) AS earner, user_id, event_type, "
        "sum(sign) AS n, sum(sign * lots) AS n_lots, sum(sign * is_first_deposit) AS n_ftd "
        f"FROM {DATABASE}.events_credited WHERE partner_id != '' AND reversed = 0 "
        "AND event_type IN ('trade', 'deposit') "
        "AND ts >= fromUnixTimestamp64Milli({start:Int64}, 'UTC') "
        "AND ts < fromUnixTimestamp64Milli({end:Int64}, 'UTC') "
        "GROUP BY earner, user_id, event_type) GROUP BY earner",
        parameters={"start": start_ms(period), "end": end_ms(period)},
    ).result_rows
    return {str(r[0]): (int(r[1]), Decimal(r[2]), int(r[3])) for r in rows}


def tier_rows(
    period: str, figures: Mapping[str, tuple[int, Decimal, int]],
    plans: Mapping[str, Sequence[PlanVersion]],
) -> list[tuple[Any, ...]]:
    """Each partner with figures, under every plan version that has tiers."""
    rows: list[tuple[Any, ...]] = []
    for plan_id, versions in plans.items():
        for version in versions:
            if not version.terms.tiers:
                continue
            for partner_id, (active, lots, first_deposits) in figures.items():
                tier = version.terms.tier(active, lots, first_deposits)
                name, multiplier = (tier.name, tier.multiplier) if tier else ("", ONE)
                rows.append((period, partner_id, plan_id, version.version, name, multiplier,
                             active, lots, first_deposits))
    return rows


def write_tiers(client: Client, period: str,
                plans: Mapping[str, Sequence[PlanVersion]]) -> list[tuple[Any, ...]]:
    """Work out and store the month's tiers (from the month before); returns the rows."""
    rows = tier_rows(period, downline_figures(client, previous_month(period)), plans)
    # `period` is YYYY-MM (checked where it came in).
    client.command(f"ALTER TABLE {DATABASE}.commission_tiers DROP PARTITION '{period}'")
    _insert(client, "commission_tiers", rows, _TIER_COLUMNS)
    return rows


def stored_tiers(client: Client, period: str) -> list[tuple[Any, ...]]:
    rows = client.query(
        "SELECT period, partner_id, plan_id, plan_version, tier, multiplier, active_traders, "
        f"lots, first_deposits FROM {DATABASE}.commission_tiers WHERE period = {{period:String}} "
        "ORDER BY partner_id, plan_id, plan_version", parameters={"period": period},
    ).result_rows
    return [tuple(row) for row in rows]
