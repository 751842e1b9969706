"""Writing the ledger: a whole open month computed again and swapped in, or some users' lines
brought up to date. Blocking (ClickHouse): run it in a worker thread, holding the ledger lock.

A line's natural period is the month it accrues in. While that month is open the line is
simply what the events say now (written when it changes, replaced by a deleted row when it no
longer holds). Once the month is closed its lines are frozen; when the events come to say
something else (a late trade, a reversal, a registration that arrived late), the difference is
an adjustment line in the first open month after it, which holds the line's id in `adjusts`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from decimal import Decimal
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics.commissions.lines import Scope, cpa_lines, trade_lines
from analytics.commissions.months import end_ms, next_month, start_ms
from analytics.commissions.schema import DATABASE, LINE_COLUMNS, LINE_NAMES
from edge.clock import now_ms

log = logging.getLogger("invite.commissions")

DAY_MS: Final = 86_400_000
ZERO: Final = Decimal(0)
USER_CHUNK: Final = 5_000
# What makes two versions of a line the same line (computed_at aside).
SAME: Final = ", ".join(name for name in LINE_NAMES if name not in ("computed_at", "is_deleted"))
_TYPES: Final = [type_name for _, type_name in LINE_COLUMNS]
Progress = Callable[[int, int], None]  # (done, total) steps


class Ledger:
    def __init__(self, client: Client, currency: str) -> None:
        self._client = client
        self._currency = currency

    def _run(self, statement: tuple[str, dict[str, Any]]) -> None:
        sql, parameters = statement
        self._client.command(sql, parameters={**parameters, "currency": self._currency})

    def recompute_period(self, period: str, progress: Progress | None = None) -> int:
        """Compute an open month's lines again from the events, day by day, and swap them in
        whole (its adjustment lines are kept as they are); returns the month's line count."""
        self._client.command(f"TRUNCATE TABLE {DATABASE}.commissions_staging")
        first, after = start_ms(period), end_ms(period)
        days = list(range(first, after, DAY_MS))
        for done, day in enumerate(days, start=1):
            self._run(trade_lines(Scope(day, min(day + DAY_MS, after)), "commissions_staging"))
            if progress is not None:
                progress(done, len(days) + 1)
        self._run(cpa_lines(Scope(first, after), "commissions_staging"))
        # `period` is YYYY-MM (checked where it came in).
        self._client.command(
            f"INSERT INTO {DATABASE}.commissions_staging SELECT * FROM {DATABASE}.commissions "
            f"FINAL WHERE period = '{period}' AND adjusts != ''"
        )
        self._client.command(
            f"ALTER TABLE {DATABASE}.commissions REPLACE PARTITION '{period}' "
            f"FROM {DATABASE}.commissions_staging",
            settings={"allow_replace_partition_from_empty_source": 1},
        )
        if progress is not None:
            progress(len(days) + 1, len(days) + 1)
        return self.count(period)

    def count(self, period: str) -> int:
        rows = self._client.query(
            f"SELECT count() FROM {DATABASE}.commissions FINAL WHERE period = {{p:String}}",
            parameters={"p": period}).result_rows
        return int(rows[0][0])

    def apply_users(self, users: Collection[str], closed: Collection[str]) -> int:
        """Bring every line of these users up to date; returns the rows written."""
        written = 0
        ordered = sorted(users)
        for start in range(0, len(ordered), USER_CHUNK):
            written += self._apply(ordered[start : start + USER_CHUNK], sorted(closed))
        return written

    def _apply(self, users: list[str], closed: list[str]) -> int:
        self._client.command(f"TRUNCATE TABLE {DATABASE}.commissions_scratch")
        scope = Scope(users=tuple(users))
        self._run(trade_lines(scope, "commissions_scratch"))
        self._run(cpa_lines(scope, "commissions_scratch"))
        parameters = {"users": users, "closed": closed}
        before = self._rows()
        # Open months: what changed or is new, then what no longer holds.
        self._client.command(
            f"INSERT INTO {DATABASE}.commissions SELECT * FROM {DATABASE}.commissions_scratch "
            "WHERE period NOT IN {closed:Array(String)} "
            f"AND ({SAME}) NOT IN (SELECT {SAME} FROM {DATABASE}.commissions FINAL "
            "WHERE user_id IN {users:Array(String)} AND adjusts = '')",
            parameters=parameters,
        )
        self._client.command(
            f"INSERT INTO {DATABASE}.commissions SELECT * REPLACE (now64(3) AS computed_at, "
            f"toUInt8(1) AS is_deleted) FROM {DATABASE}.commissions FINAL "
            "WHERE user_id IN {users:Array(String)} AND adjusts = '' "
            "AND period NOT IN {closed:Array(String)} "
            "AND (line_id, period) NOT IN "
            f"(SELECT line_id, period FROM {DATABASE}.commissions_scratch)",
            parameters=parameters,
        )
        if closed:
            self._adjust(users, closed)
        return self._rows() - before

    def _rows(self) -> int:
        return int(self._client.query(
            f"SELECT count() FROM {DATABASE}.commissions").result_rows[0][0])

    def _adjust(self, users: list[str], closed: list[str]) -> None:
        """Adjustments in open months for what the events now say of closed months' lines."""
        columns = ", ".join(LINE_NAMES)
        parameters = {"users": users, "closed": closed}
        desired = self._lines(
            f"SELECT {columns} FROM {DATABASE}.commissions_scratch "
            "WHERE period IN {closed:Array(String)}", parameters)
        booked = self._lines(
            f"SELECT {columns} FROM {DATABASE}.commissions FINAL "
            "WHERE user_id IN {users:Array(String)} AND (period IN {closed:Array(String)} "
            "OR adjusts != '')", parameters)
        frozen: dict[str, Decimal] = defaultdict(lambda: ZERO)
        origin_rows: dict[str, dict[str, Any]] = {}
        natural: dict[str, str] = {}
        open_adjustments: dict[str, dict[str, Any]] = {}
        for row in booked:
            origin = row["adjusts"] or row["line_id"]
            if row["period"] in closed:
                frozen[origin] += row["amount"]
                natural.setdefault(origin, row["adjusts_period"] or row["period"])
                if not row["adjusts"]:
                    origin_rows[origin] = row
            else:
                open_adjustments[origin] = row
        wanted = {row["line_id"]: row for row in desired}
        for row in desired:
            natural[row["line_id"]] = row["period"]
        writes: list[dict[str, Any]] = []
        now = now_ms()
        for origin in sorted(set(wanted) | set(frozen)):
            if origin not in natural:
                continue  # an adjustment of a month still open: its origin is kept up to date
            need = (wanted[origin]["amount"] if origin in wanted else ZERO) - frozen[origin]
            current = open_adjustments.get(origin)
            if need == 0:
                if current is not None:
                    writes.append({**current, "computed_at": now, "is_deleted": 1})
                continue
            template = wanted.get(origin) or origin_rows.get(origin) or current
            if template is None:
                continue
            target = _first_open_after(natural[origin], closed)
            adjustment = {
                **template, "line_id": adjustment_id(origin, target), "period": target,
                "kind": template["kind"] if origin in wanted else "reversal",
                "base": template["base"] if origin in wanted else -template["base"],
                "amount": need, "adjusts": origin, "adjusts_period": natural[origin],
                "status": "open", "computed_at": now, "is_deleted": 0,
            }
            if current is not None and current["line_id"] != adjustment["line_id"]:
                writes.append({**current, "computed_at": now, "is_deleted": 1})
            if current is None or _differs(current, adjustment):
                writes.append(adjustment)
        if writes:
            self._client.insert(
                f"{DATABASE}.commissions", [[row[name] for name in LINE_NAMES] for row in writes],
                column_names=list(LINE_NAMES), column_type_names=_TYPES)

    def _lines(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        result = self._client.query(sql, parameters=parameters)
        return [dict(zip(LINE_NAMES, row, strict=True)) for row in result.result_rows]


def _differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return any(current[name] != wanted[name] for name in LINE_NAMES
               if name not in ("computed_at", "is_deleted"))


def _first_open_after(period: str, closed: Sequence[str]) -> str:
    month = next_month(period)
    while month in closed:
        month = next_month(month)
    return month


def adjustment_id(origin: str, period: str) -> str:
    return hashlib.sha256(f"adjusts:{origin}:{period}".encode()).hexdigest()[:32]
