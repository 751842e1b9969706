"""The ledger's lines as ClickHouse computes them from the credited events (one INSERT … SELECT
per kind of source), for a month or for a set of users.

Trades earn a rebate (`lots` x the per-lot rate of the first rule whose glob matches the symbol)
and a revenue share (`revenueShare` x (commission + markup)); a reversal of a trade earns the
same lines negated, at the reversal's time. A user's CPA is paid once, at the moment its first
deposit (at least `minFirstDeposit`) and the lots it traded within `withinDays` of its
registration (at least `minLots`) both hold. Each base is then shared along the chain of the
event's partner as at the event: level n earns `shares[n-1]` x base x its tier's multiplier,
rounded half-even to cents. The plan is the one in force for the event's partner at the event
(for a CPA: at its first deposit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from analytics.commissions.schema import DATABASE, LINE_NAMES

_CREDITED_COLUMNS: Final = ("event_id, event_type, ts, user_id, partner_id, amount, lots, "
                             "broker_revenue, symbol, is_first_deposit, reversed")
# The credited events as they stand (crediting writes a cancelling row and a new one): a few
# rows picked by id or user are grouped, a month is read collapsed (FINAL, in key order).
_GROUPED: Final = (
    f"SELECT {_CREDITED_COLUMNS} FROM {DATABASE}.events_credited WHERE {{where}} "
    f"GROUP BY {_CREDITED_COLUMNS} HAVING sum(sign) > 0"
)
_COLLAPSED: Final = (
    f"SELECT {_CREDITED_COLUMNS} FROM {DATABASE}.events_credited FINAL WHERE {{where}}"
)
# Reversals, one row per event id (a repeated event is the same row; the latest copy wins).
_REVERSALS: Final = (
    "SELECT event_id, r_ts AS ts, r_reverses AS reverses FROM (SELECT event_id, "
    "argMax(ts, inserted_at) AS r_ts, argMax(reverses, inserted_at) AS r_reverses "
    f"FROM {DATABASE}.events WHERE event_type = 'reversal' GROUP BY event_id) WHERE {{where}}"
)


def _id(*parts: str) -> str:
    """A line id: 32 hex characters of SHA-256 over the length-prefixed parts (so that no
    event id, whatever it holds, can spell another line's parts)."""
    joined = ", ".join(f"toString(length({p})), ':', {p}" for p in parts)
    return f"lower(hex(substring(SHA256(concat({joined})), 1, 16)))"


@dataclass(frozen=True)
class Scope:
    """Which lines: those accruing in [start_ms, end_ms) (a month, optionally only the trades
    of source partners in [low, high)), or those of some events and users: the trade and
    reversal lines of `events` (credited trades) and the CPA lines of `users`."""

    start_ms: int | None = None
    end_ms: int | None = None
    users: tuple[str, ...] | None = None
    events: tuple[str, ...] = ()
    low: str | None = None  # source partners from (inclusive)
    high: str | None = None  # up to (exclusive; None: no end)

    @property
    def picked(self) -> bool:
        return self.users is not None

    def parameters(self) -> dict[str, Any]:
        if self.picked:
            return {"users": list(self.users or ()), "events": list(self.events)}
        return {"start": self.start_ms, "end": self.end_ms, "low": self.low or "",
                "high": self.high or ""}

    def on(self, column: str) -> str:
        """The condition on a time column (a month) or on user_id (users)."""
        if self.picked:
            return "user_id IN {users:Array(String)}"
        return (f"{column} >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC') AND "
                f"{column} < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')")

    def credited(self, where: str) -> str:
        """The credited events matching `where`: grouped when picked, else collapsed."""
        return (_GROUPED if self.picked else _COLLAPSED).format(where=where)

    def partners(self) -> str:
        """The condition on the source partner (the month's trades in ranges)."""
        found = " AND partner_id >= {low:String}" if self.low else ""
        return found + (" AND partner_id < {high:String}" if self.high is not None else "")


def _levels(source: str) -> str:
    """Rows of `source` (one per event, with its bases, chain, shares and plan) → one row per
    base and level that earns, with the exclusions (each row's arrays are taken apart before
    the rows are multiplied, not copied into every level's row)."""
    excluded = ("multiIf(chain_status[i] = 'suspended', 'suspended', chain_ctid[i] != '' AND "
                "chain_ctid[i] = user_id, 'self_referral', '')")
    earning = ("arrayFilter(i -> shares[i] != 0, "
               "arrayEnumerate(arraySlice(shares, 1, length(chain))))")
    return f"""
    SELECT b.* EXCEPT (chain, chain_status, chain_ctid, shares, bases),
        lv.1 AS kind0, lv.2 AS base0, lv.3 AS level, lv.4 AS earner, lv.5 AS share,
        lv.6 AS excluded
    FROM ({source}) AS b
    ARRAY JOIN arrayFlatten(arrayMap(
        base -> arrayMap(i -> (base.1, base.2, i, chain[i], shares[i], {excluded}), {earning}),
        arrayFilter(base -> base.2 != 0, bases))) AS lv
    """


def _tiered(levels_sql: str) -> str:
    return f"""
    SELECT l.*,
        if(tr.partner_id != '', tr.tier, l.base_tier) AS tier_name,
        if(tr.partner_id != '', tr.multiplier, l.base_multiplier) AS mult
    FROM ({levels_sql}) AS l
    LEFT JOIN {DATABASE}.commission_tiers AS tr
        ON tr.period = l.tier_period AND tr.partner_id = l.earner
        AND tr.plan_id = l.plan_id AND tr.plan_version = l.plan_version
    """


def _amount(base: str) -> str:
    return (f"toDecimal128(roundBankers(toDecimal256({base}, 16) * toDecimal256(share, 16) "
            "* toDecimal256(mult, 16), 2), 2)")


def _select_lines(tiered_sql: str, kind: str, line_id: str) -> str:
    """The ledger's columns (LINE_NAMES order) from a tiered level row."""
    return f"""
    SELECT {line_id} AS line_id, formatDateTime(line_ts, '%Y-%m', 'UTC') AS period,
        line_ts AS ts, earner AS partner_id, toUInt8(level) AS level,
        source_partner AS source_partner_id, user_id, line_event AS event_id, {kind} AS kind,
        toDecimal128(base0 * factor, 16) AS base, toDecimal128(share, 16) AS rate,
        toDecimal128(mult, 16) AS multiplier,
        if(excluded != '', toDecimal128(0, 2), {_amount('base0')}) * factor AS amount,
        {{currency:String}} AS currency, plan_id, plan_version, tier_name AS tier,
        'open' AS status, excluded, reverses, '' AS adjusts, '' AS adjusts_period,
        now64(3) AS computed_at, toUInt8(0) AS is_deleted
    FROM ({tiered_sql})
    WHERE 1
    """


def trade_lines(scope: Scope, target: str) -> tuple[str, dict[str, Any]]:
    """INSERT the rebate, revenue-share and reversal lines of the scope into `target`."""
    if scope.picked:
        trades = scope.credited("event_type = 'trade' AND partner_id != '' AND "
                                "event_id IN {events:Array(String)}")
        reversed_trades = scope.credited(
            "event_type = 'trade' AND partner_id != '' AND reversed = 1 AND "
            "event_id IN {events:Array(String)}")
        reversals = _REVERSALS.format(where="1")
    else:
        trades = scope.credited("event_type = 'trade' AND partner_id != ''" + scope.partners()
                                + " AND " + scope.on("ts"))
        reversed_trades = scope.credited("event_type = 'trade' AND partner_id != '' AND "
                                         "reversed = 1" + scope.partners())
        reversals = _REVERSALS.format(where=scope.on("ts"))
    source = f"""
    SELECT event_id AS line_event, ts AS line_ts, '' AS reverses, toInt8(1) AS factor,
        ts, user_id, partner_id, lots, broker_revenue, symbol
    FROM ({trades})
    UNION ALL
    SELECT r.event_id, r.ts, t.event_id, toInt8(-1), t.ts, t.user_id, t.partner_id, t.lots,
        t.broker_revenue, t.symbol
    FROM ({reversals}) AS r INNER JOIN ({reversed_trades}) AS t ON t.event_id = r.reverses
    """
    planned = f"""
    SELECT s.line_event, s.line_ts, s.reverses, s.factor, s.ts, s.user_id,
        s.partner_id AS source_partner, tl.chain, tl.chain_status, tl.chain_ctid,
        tl.plan_id AS plan_id, tl.plan_version AS plan_version, pl.shares AS shares,
        pl.base_tier, pl.base_multiplier, formatDateTime(s.ts, '%Y-%m', 'UTC') AS tier_period,
        [('rebate', toDecimal128(toDecimal256(s.lots, 8) * toDecimal256(rb.per_lot, 8), 16)),
         ('revenue_share', toDecimal128(toDecimal256(pl.revenue_share, 8)
                                        * toDecimal256(s.broker_revenue, 8), 16))] AS bases
    FROM ({source}) AS s
    ASOF INNER JOIN {DATABASE}.commission_timeline AS tl
        ON tl.partner_id = s.partner_id AND s.ts >= tl.valid_from
    INNER JOIN {DATABASE}.commission_plans AS pl
        ON pl.plan_id = tl.plan_id AND pl.version = tl.plan_version
    LEFT JOIN {DATABASE}.commission_rebates AS rb
        ON rb.plan_id = tl.plan_id AND rb.plan_version = tl.plan_version
        AND rb.symbol = s.symbol
    """
    kind = "if(factor < 0, 'reversal', kind0)"
    line_id = _id(kind, "kind0", "toString(level)", "earner", "line_event", "reverses")
    select = _select_lines(_tiered(_levels(planned)), kind, line_id)
    sql = f"INSERT INTO {DATABASE}.{target} ({', '.join(LINE_NAMES)}) {select}"
    return sql, scope.parameters()


def cpa_lines(scope: Scope, target: str) -> tuple[str, dict[str, Any]]:
    """INSERT the CPA lines whose moment falls in the scope (a month), or of the users."""
    deposits = scope.credited(
        "event_type = 'deposit' AND is_first_deposit = 1 AND reversed = 0 AND partner_id != ''"
        + (" AND " + scope.on("ts") if scope.picked else ""))
    # Whose trades and registrations: the scope's users, or every user with a first deposit.
    whose = scope.on("ts") if scope.picked else "user_id IN (SELECT user_id FROM first_deposits)"
    trades = scope.credited("event_type = 'trade' AND reversed = 0 AND partner_id != '' AND "
                            + whose)
    registrations = (
        f"SELECT user_id, min(ts) AS registered FROM {DATABASE}.conversions FINAL "
        f"WHERE {whose} AND partner_id != '' "
        "AND event_type IN ('registration', 'reattribution') GROUP BY user_id")
    terms = f"""
    SELECT f.user_id AS user_id, f.event_id AS ftd_event, f.ts AS ftd_ts, f.amount AS ftd_amount,
        f.partner_id AS ftd_partner, tl.plan_id AS plan_id, tl.plan_version AS plan_version,
        pl.cpa_amount AS cpa_amount, pl.cpa_min_first_deposit AS min_deposit,
        pl.cpa_min_lots AS min_lots, pl.cpa_within_days AS within_days, pl.shares AS shares,
        pl.base_tier AS base_tier, pl.base_multiplier AS base_multiplier,
        if(pl.cpa_within_days = 0, toDateTime64('2200-01-01 00:00:00', 3, 'UTC'),
           rg.registered + toIntervalDay(pl.cpa_within_days)) AS window_end
    FROM first_deposits AS f
    ASOF INNER JOIN {DATABASE}.commission_timeline AS tl
        ON tl.partner_id = f.partner_id AND f.ts >= tl.valid_from
    INNER JOIN {DATABASE}.commission_plans AS pl
        ON pl.plan_id = tl.plan_id AND pl.version = tl.plan_version
    INNER JOIN ({registrations}) AS rg ON rg.user_id = f.user_id
    WHERE pl.has_cpa = 1 AND f.amount >= pl.cpa_min_first_deposit
    """
    # The trades inside each user's window, in order, and the first at which their lots reach
    # min_lots: the CPA's moment is the later of it and the first deposit.
    qualified = f"""
    SELECT c.*,
        arraySort(x -> (x.1, x.2), groupArrayIf((t.ts, t.event_id, t.lots, t.partner_id),
                  t.event_id != '' AND t.ts < c.window_end)) AS traded,
        arrayFirstIndex(total -> total >= c.min_lots,
                        arrayCumSum(arrayMap(x -> x.3, traded))) AS reached
    FROM ({terms}) AS c LEFT JOIN trades AS t ON t.user_id = c.user_id
    GROUP BY ALL
    HAVING c.min_lots = 0 OR reached > 0
    """
    moment = f"""
    SELECT q.user_id AS user_id, q.plan_id AS plan_id, q.plan_version AS plan_version,
        q.shares AS shares, q.base_tier AS base_tier, q.base_multiplier AS base_multiplier,
        q.cpa_amount AS base0,
        if(q.min_lots > 0 AND traded[reached].1 > q.ftd_ts, traded[reached].1, q.ftd_ts)
            AS line_ts,
        if(q.min_lots > 0 AND traded[reached].1 > q.ftd_ts, traded[reached].2, q.ftd_event)
            AS line_event,
        if(q.min_lots > 0 AND traded[reached].1 > q.ftd_ts, traded[reached].4, q.ftd_partner)
            AS source_partner
    FROM ({qualified}) AS q
    """
    located = f"""
    SELECT m.* EXCEPT (base0), [('cpa', m.base0)] AS bases, tl.chain AS chain,
        tl.chain_status AS chain_status,
        tl.chain_ctid AS chain_ctid, '' AS reverses, toInt8(1) AS factor,
        formatDateTime(m.line_ts, '%Y-%m', 'UTC') AS tier_period
    FROM ({moment}) AS m
    ASOF INNER JOIN {DATABASE}.commission_timeline AS tl
        ON tl.partner_id = m.source_partner AND m.line_ts >= tl.valid_from
    WHERE m.base0 != 0{'' if scope.picked else ' AND ' + scope.on('m.line_ts')}
    """
    line_id = _id("'cpa'", "toString(level)", "earner", "user_id")
    select = _select_lines(_tiered(_levels(located)), "'cpa'", line_id)
    sql = (f"INSERT INTO {DATABASE}.{target} ({', '.join(LINE_NAMES)}) "
           f"WITH first_deposits AS ({deposits}), trades AS ({trades}) {select}")
    return sql, scope.parameters()
