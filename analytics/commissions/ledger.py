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
from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from analytics.commissions.lines import Scope, cpa_lines, trade_lines
from analytics.commissions.months import end_ms, next_month, start_ms
from analytics.commissions.schema import DATABASE, LINE_COLUMNS, LINE_NAMES
from edge.clock import now_ms

log = logging.getLogger("invite.commissions")

DAY_MS: Final = 86_400_000
ZERO: Final = Decimal(0)
USER_CHUNK: Final = 5_000
EVENT_CHUNK: Final = 20_000
RANGE_TRADES: Final = 1_000_000  # a month's trades computed in ranges of about this many
# The staging table gets each line once: no merging of equal keys while inserting.
_STAGING: Final = {"optimize_on_insert": 0}
# What makes two versions of a line the same line (computed_at aside).
SAME: Final = ", ".join(name for name in LINE_NAMES if name not in ("computed_at", "is_deleted"))
_TYPES: Final = [type_name for _, type_name in LINE_COLUMNS]
Progress = Callable[[int, int], None]  # (done, total) steps


class Ledger:
    def __init__(self, client: Client, currency: str) -> None:
        self._client = client
        self._currency = currency

    def _run(self, statement: tuple[str, dict[str, Any]],
             settings: Mapping[str, Any] | None = None) -> None:
        sql, parameters = statement
        self._client.command(sql, parameters={**parameters, "currency": self._currency},
                             settings=dict(settings or {}))

    def recompute_period(self, period: str, progress: Progress | None = None) -> int:
        """Compute an open month's lines again from the events, its trades in ranges of source
        partners, and swap them in whole (its adjustment lines are kept as they are); returns
        the month's line count."""
        self._client.command(f"TRUNCATE TABLE {DATABASE}.commissions_staging")
        first, after = start_ms(period), end_ms(period)
        ranges = self._partner_ranges(first, after)
        # The staging table's parts are not merged while it fills (merging them again and again
        # as ranges arrive cost as much as computing the lines): the ledger merges them once,
        # in the background, after the swap.
        merging = self._merges("STOP")
        try:
            for done, (low, high) in enumerate(ranges, start=1):
                self._run(trade_lines(Scope(first, after, low=low, high=high),
                                      "commissions_staging"), _STAGING)
                if progress is not None:
                    progress(done, len(ranges) + 1)
            self._run(cpa_lines(Scope(first, after), "commissions_staging"), _STAGING)
        finally:
            if merging:
                self._merges("START")
        # `period` is YYYY-MM (checked where it came in).
        # The month's adjustments as they stand (each line's latest version, if not deleted).
        self._client.command(
            f"INSERT INTO {DATABASE}.commissions_staging SELECT * FROM (SELECT * FROM "
            f"{DATABASE}.commissions WHERE period = '{period}' AND adjusts != '' "
            "ORDER BY line_id, computed_at DESC, is_deleted DESC LIMIT 1 BY line_id) "
            "WHERE is_deleted = 0"
        )
        count = int(self._client.query(
            f"SELECT count() FROM {DATABASE}.commissions_staging").result_rows[0][0])
        self._client.command(
            f"ALTER TABLE {DATABASE}.commissions REPLACE PARTITION '{period}' "
            f"FROM {DATABASE}.commissions_staging",
            settings={"allow_replace_partition_from_empty_source": 1},
        )
        if progress is not None:
            progress(len(ranges) + 1, len(ranges) + 1)
        return count

    def _merges(self, action: str) -> bool:
        """SYSTEM STOP or START MERGES on the staging table; False where the server does not
        let this user (the month is computed all the same, only slower)."""
        try:
            self._client.command(f"SYSTEM {action} MERGES {DATABASE}.commissions_staging")
        except ClickHouseError as exc:
            log.debug("SYSTEM %s MERGES refused: %s", action, str(exc)[:200])
            return False
        return True

    def _partner_ranges(self, first: int, after: int) -> list[tuple[str | None, str | None]]:
        """Ranges [low, high) of source partners holding about RANGE_TRADES trades each (the
        credited events are sorted by partner: each range reads its own part)."""
        rows = self._client.query(
            "SELECT partner_id, count() FROM "
            f"{DATABASE}.events_credited WHERE event_type = 'trade' AND partner_id != '' "
            "AND sign = 1 AND ts >= fromUnixTimestamp64Milli({start:Int64}, 'UTC') "
            "AND ts < fromUnixTimestamp64Milli({end:Int64}, 'UTC') "
            "GROUP BY partner_id ORDER BY partner_id",
            parameters={"start": first, "end": after}).result_rows
        bounds: list[str | None] = [None]
        held = 0
        for partner_id, trades in rows:
            if held >= RANGE_TRADES:
                bounds.append(str(partner_id))
                held = 0
            held += int(trades)
        return list(zip(bounds, [*bounds[1:], None], strict=True))

    def count(self, period: str) -> int:
        rows = self._client.query(
            f"SELECT count() FROM {DATABASE}.commissions FINAL WHERE period = {{p:String}}",
            parameters={"p": period}).result_rows
        return int(rows[0][0])

    def apply_changes(self, changed: Mapping[str, Collection[str]],
                      closed: Collection[str]) -> int:
        """Bring up to date the lines of these credited events (user → ids of its events whose
        credited rows changed): their trade and reversal lines, and their users' CPA lines;
        returns the rows written."""
        written = 0
        chunk: dict[str, Collection[str]] = {}
        held = 0
        for user in sorted(changed):
            chunk[user] = changed[user]
            held += len(changed[user])
            if len(chunk) >= USER_CHUNK or held >= EVENT_CHUNK:
                written += self._apply(chunk, sorted(closed))
                chunk, held = {}, 0
        if chunk:
            written += self._apply(chunk, sorted(closed))
        return written

    def _apply(self, changed: Mapping[str, Collection[str]], closed: list[str]) -> int:
        users = tuple(changed)
        events = tuple(sorted({e for ids in changed.values() for e in ids}))
        self._client.command(f"TRUNCATE TABLE {DATABASE}.commissions_scratch")
        scope = Scope(users=users, events=events)
        self._run(trade_lines(scope, "commissions_scratch"))
        self._run(cpa_lines(scope, "commissions_scratch"))
        owner = _Owner(set(users), set(events))
        desired = self._lines(f"SELECT {', '.join(LINE_NAMES)} FROM "
                              f"{DATABASE}.commissions_scratch", {})
        # Each line's latest version (the ledger's FINAL, for the few lines these can own).
        booked = [row for row in self._lines(
            f"SELECT {', '.join(LINE_NAMES)} FROM {DATABASE}.commissions "
            "WHERE (kind = 'cpa' OR adjusts != '' OR event_id IN {events:Array(String)} "
            "OR reverses IN {events:Array(String)}) AND user_id IN {users:Array(String)} "
            "ORDER BY period, line_id, computed_at DESC, is_deleted DESC LIMIT 1 BY period, "
            "line_id", {"users": list(users), "events": list(events)}) if not row["is_deleted"]]
        now = now_ms()
        # Open months: what changed or is new, then what no longer holds.
        held = {row["line_id"]: row for row in booked
                if not row["adjusts"] and row["period"] not in closed and owner.owns(row)}
        writes: list[dict[str, Any]] = []
        wanted: set[str] = set()
        for row in desired:
            if row["period"] in closed:
                continue
            wanted.add(row["line_id"])
            current = held.get(row["line_id"])
            if current is None or _differs(current, row):
                writes.append({**row, "computed_at": now, "is_deleted": 0})
        writes += [{**row, "computed_at": now, "is_deleted": 1}
                   for line_id, row in held.items() if line_id not in wanted]
        if closed:
            writes += self._adjust(owner, closed, desired, booked, now)
        if writes:
            self._client.insert(
                f"{DATABASE}.commissions", [[row[name] for name in LINE_NAMES] for row in writes],
                column_names=list(LINE_NAMES), column_type_names=_TYPES)
        return len(writes)

    def _adjust(self, owner: _Owner, closed: list[str], desired: list[dict[str, Any]],
                booked: list[dict[str, Any]], now: int) -> list[dict[str, Any]]:
        """Adjustments in open months for what the events now say of closed months' lines
        (those the owner's lines reach)."""
        desired = [row for row in desired if row["period"] in closed]
        closed_origins = {row["line_id"]: row for row in booked
                          if not row["adjusts"] and row["period"] in closed}
        owned = {line_id for line_id, row in closed_origins.items() if owner.owns(row)}
        owned |= {row["line_id"] for row in desired}

        def reached(row: dict[str, Any]) -> bool:
            if not row["adjusts"]:  # a closed month's own line
                return row["period"] in closed and row["line_id"] in owned
            if row["adjusts"] in closed_origins or row["adjusts"] in owned:
                return row["adjusts"] in owned  # judged by the line it adjusts
            # Its line was never booked: the adjustment carries that line's own fields.
            return owner.owns(row)

        booked = [row for row in booked if reached(row)]
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
                if row["adjusts_period"] in closed:
                    natural.setdefault(origin, row["adjusts_period"])
        wanted = {row["line_id"]: row for row in desired}
        for row in desired:
            natural[row["line_id"]] = row["period"]
        writes: list[dict[str, Any]] = []
        for origin in sorted(set(wanted) | set(frozen) | set(open_adjustments)):
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
        return writes

    def _lines(self, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        result = self._client.query(sql, parameters=parameters)
        return [dict(zip(LINE_NAMES, row, strict=True)) for row in result.result_rows]


class _Owner:
    """Which booked lines a set of changed events and users computes again: the trade and
    reversal lines of the events, the CPA lines of the users."""

    def __init__(self, users: set[str], events: set[str]) -> None:
        self._users = users
        self._events = events

    def owns(self, row: Mapping[str, Any]) -> bool:
        if row["kind"] == "cpa":
            return row["user_id"] in self._users
        return row["event_id"] in self._events or row["reverses"] in self._events


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
