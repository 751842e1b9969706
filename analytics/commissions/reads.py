"""Reading the ledger: lines by filter a page at a time, their totals, a partner's month."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import orjson
from clickhouse_connect.driver.client import Client

from analytics.commissions.plans import text
from analytics.commissions.schema import DATABASE, LINE_NAMES
from edge.clock import iso_utc
from edge.errors import InvalidInput

KINDS: Final = ("cpa", "rebate", "revenue_share", "reversal")
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
EXPORT_PAGE: Final = 10_000
_COLUMNS: Final = ", ".join(
    "toUnixTimestamp64Milli(ts)" if name == "ts" else name
    for name in LINE_NAMES if name not in ("computed_at", "is_deleted")
)
_NAMES: Final = tuple(name for name in LINE_NAMES if name not in ("computed_at", "is_deleted"))


@dataclass(frozen=True)
class LineFilter:
    start_ms: int | None = None
    end_ms: int | None = None
    partner_id: str | None = None
    include_downline: bool = False
    kind: str | None = None
    period: str | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        conditions = ["is_deleted = 0"]
        parameters: dict[str, Any] = {}
        if self.start_ms is not None:
            conditions.append("ts >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')")
            parameters["start"] = self.start_ms
        if self.end_ms is not None:
            conditions.append("ts < fromUnixTimestamp64Milli({end:Int64}, 'UTC')")
            parameters["end"] = self.end_ms
        if self.partner_id is not None:
            parameters["partner"] = self.partner_id
            if self.include_downline:
                conditions.append(
                    "(partner_id = {partner:String} OR partner_id IN (SELECT partner_id FROM "
                    f"{DATABASE}.partners FINAL WHERE has(ancestors, {{partner:String}})))")
            else:
                conditions.append("partner_id = {partner:String}")
        if self.kind is not None:
            conditions.append("kind = {kind:String}")
            parameters["kind"] = self.kind
        if self.period is not None:
            conditions.append("period = {period:String}")
            parameters["period"] = self.period
        return " AND ".join(conditions), parameters


def line_json(row: dict[str, Any]) -> dict[str, Any]:
    """A line as the API shows it."""
    return {
        "lineId": row["line_id"], "period": row["period"], "ts": iso_utc(int(row["ts"])),
        "partnerId": row["partner_id"], "level": int(row["level"]),
        "sourcePartnerId": row["source_partner_id"], "userId": row["user_id"],
        "eventId": row["event_id"], "kind": row["kind"], "base": text(row["base"]),
        "rate": text(row["rate"]), "multiplier": text(row["multiplier"]),
        "amount": cents(row["amount"]), "currency": row["currency"], "planId": row["plan_id"],
        "planVersion": int(row["plan_version"]), "tier": row["tier"] or None,
        "status": row["status"], "excluded": row["excluded"] or None,
        "reverses": row["reverses"] or None, "adjusts": row["adjusts"] or None,
        "adjustsPeriod": row["adjusts_period"] or None,
    }


def cents(value: Decimal) -> str:
    return format(Decimal(value).quantize(Decimal("0.01")), "f")


def encode_cursor(ts_ms: int, line_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts_ms, line_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (ts, lineId) a cursor continues after; InvalidInput for any other spelling."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError):
        value = None
    if (not isinstance(value, list) or len(value) != 2 or type(value[0]) is not int
            or not isinstance(value[1], str) or encode_cursor(value[0], value[1]) != cursor):
        raise InvalidInput("cursor is not one this API gave (pass nextCursor back as it is)")
    return value[0], value[1]


def _rows(client: Client, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=parameters)
    return [dict(zip(_NAMES, row, strict=True)) for row in result.result_rows]


def page(client: Client, f: LineFilter, limit: int,
         after: tuple[int, str] | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of lines in (ts, lineId) order, and the cursor of the next (None: the last)."""
    where, parameters = f.where()
    if after is not None:
        where += (" AND (ts, line_id) > (fromUnixTimestamp64Milli({after_ts:Int64}, 'UTC'), "
                  "{after_id:String})")
        parameters.update(after_ts=after[0], after_id=after[1])
    rows = _rows(client, f"SELECT {_COLUMNS} FROM {DATABASE}.commissions FINAL WHERE {where} "
                         f"ORDER BY ts, line_id LIMIT {int(limit) + 1}", parameters)
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(int(rows[-1]["ts"]), rows[-1]["line_id"]) if more and rows else None
    return rows, cursor


def all_lines(client: Client, f: LineFilter) -> Iterator[dict[str, Any]]:
    """Every line of the filter, a page at a time (for CSV)."""
    after: tuple[int, str] | None = None
    while True:
        rows, cursor = page(client, f, EXPORT_PAGE, after)
        yield from rows
        if cursor is None:
            return
        after = decode_cursor(cursor)


def totals(client: Client, f: LineFilter) -> dict[str, Any]:
    """The count, the total and the totals by kind and by level of the filter's lines."""
    where, parameters = f.where()
    rows = client.query(
        f"SELECT kind, level, count(), sum(amount), countIf(adjusts != ''), "
        f"sumIf(amount, adjusts != '') FROM {DATABASE}.commissions FINAL WHERE {where} "
        "GROUP BY kind, level ORDER BY kind, level", parameters=parameters).result_rows
    by_kind: dict[str, Decimal] = {}
    by_level: dict[int, Decimal] = {}
    count, total, adjustments, adjusted = 0, Decimal(0), 0, Decimal(0)
    for kind, level, n, amount, n_adjust, adjust_amount in rows:
        by_kind[str(kind)] = by_kind.get(str(kind), Decimal(0)) + amount
        by_level[int(level)] = by_level.get(int(level), Decimal(0)) + amount
        count += int(n)
        total += amount
        adjustments += int(n_adjust)
        adjusted += adjust_amount
    return {
        "lines": count, "amount": cents(total),
        "byKind": {kind: cents(by_kind.get(kind, Decimal(0))) for kind in KINDS},
        "byLevel": [{"level": level, "amount": cents(amount)}
                    for level, amount in sorted(by_level.items())],
        "adjustments": {"lines": adjustments, "amount": cents(adjusted)},
    }


def partner_totals(client: Client, period: str) -> list[tuple[str, int, Decimal]]:
    """(partner, lines, amount) of every partner with lines in the month."""
    rows = client.query(
        f"SELECT partner_id, count(), sum(amount) FROM {DATABASE}.commissions FINAL "
        "WHERE period = {period:String} AND is_deleted = 0 GROUP BY partner_id "
        "ORDER BY partner_id", parameters={"period": period}).result_rows
    return [(str(r[0]), int(r[1]), Decimal(r[2])) for r in rows]


def tier_of(client: Client, partner_id: str, period: str, month_start: datetime) -> str | None:
    """The partner's tier for the month under its own plan (None: its plan has no tiers)."""
    rows = client.query(
        "SELECT if(t.partner_id != '', t.tier, p.base_tier) FROM "
        f"(SELECT * FROM {DATABASE}.commission_timeline WHERE partner_id = {{partner:String}} "
        "AND valid_from <= {start:DateTime64(3, 'UTC')} ORDER BY valid_from DESC LIMIT 1) AS tl "
        f"INNER JOIN {DATABASE}.commission_plans AS p "
        "ON p.plan_id = tl.plan_id AND p.version = tl.plan_version "
        f"LEFT JOIN (SELECT * FROM {DATABASE}.commission_tiers WHERE period = {{period:String}} "
        "AND partner_id = {partner:String}) AS t ON t.plan_id = tl.plan_id "
        "AND t.plan_version = tl.plan_version",
        parameters={"partner": partner_id, "start": month_start, "period": period},
    ).result_rows
    return (str(rows[0][0]) or None) if rows else None
