"""What the portal asks ClickHouse, always within the session's partner: its own figures and its
subtree's, the day series and the funnel, its links' clicks, a level of its downline, and its own
commission lines and months.

Every ClickFilter here carries `scope_partner_id` = the session's partner, so whatever else a
question names, only that partner's subtree is read (analytics/rollups.py); the ledger's reads
name the partner itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics import links, partner_scope, queries, tree
from analytics.commissions import figures as commission_figures
from analytics.commissions import reads
from analytics.commissions.reads import LineFilter
from analytics.commissions.schema import DATABASE
from analytics.events import queries as funnel_events
from analytics.filters import ClickFilter
from analytics.portal.ranges import Range, month_start

ZERO: Final = Decimal(0)
LINES_PER_PAGE: Final = 50
MONTHS_SHOWN: Final = 36
DOWNLINE_LIMIT: Final = 200


@dataclass(frozen=True)
class Totals:
    """One column of the overview: the partner alone, or with its downline."""

    clicks: int = 0  # people's clicks (link previews and bots are counted apart)
    bot_clicks: int = 0
    visitors: int = 0
    registrations: int = 0
    first_deposits: int = 0
    deposit_amount: Decimal = ZERO
    lots: Decimal = ZERO
    commissions: Decimal = ZERO


@dataclass(frozen=True)
class DayPoint:
    day: str  # YYYY-MM-DD
    clicks: int
    registrations: int
    first_deposits: int


@dataclass(frozen=True)
class Overview:
    own: Totals
    team: Totals
    earned: Decimal  # the partner's own ledger lines in the range, every level
    series: list[DayPoint]
    funnel: list[funnel_events.Step]


@dataclass(frozen=True)
class LinkFigures:
    clicks: int = 0
    visitors: int = 0
    registrations: int = 0


@dataclass(frozen=True)
class CommissionMonth:
    lines: list[dict[str, Any]]
    next_cursor: str | None
    totals: dict[str, Any]
    tier: str | None
    months: list[tuple[str, int, Decimal]] = field(default_factory=list)


def scoped(partner_id: str, viewer_id: str, window: Range, *, downline: bool) -> ClickFilter:
    """The clicks of `partner_id` (and its downline), never outside `viewer_id`'s subtree."""
    return ClickFilter(start=window.start, end=window.end, partner_id=partner_id,
                       include_downline=downline, scope_partner_id=viewer_id)


def totals(client: Client, f: ClickFilter) -> Totals:
    summary = queries.summary(client, f)
    figures = funnel_events.figures(client, f)
    return Totals(
        clicks=summary.human_clicks, bot_clicks=summary.bot_clicks,
        visitors=summary.unique_visitors, registrations=summary.registrations,
        first_deposits=figures.first_deposits, deposit_amount=figures.deposit_amount,
        lots=figures.lots, commissions=commission_figures.total(client, f),
    )


def overview(client: Client, partner_id: str, window: Range) -> Overview:
    own = scoped(partner_id, partner_id, window, downline=False)
    team = scoped(partner_id, partner_id, window, downline=True)
    points = queries.timeseries(client, team, "day")
    by_day = funnel_events.figures_by_bucket(client, team, "day")
    series = [DayPoint(
        day=point.start.astimezone(UTC).date().isoformat(), clicks=point.human_clicks,
        registrations=point.registrations,
        first_deposits=by_day.get(int(point.start.timestamp()), funnel_events.Figures())
        .first_deposits,
    ) for point in points]
    team_totals = totals(client, team)
    registered, kyc, ftd, active = funnel_events.clicks_cohort(client, team)
    funnel = funnel_events.steps([team_totals.visitors, registered, kyc, ftd, active])
    earned = reads.totals(client, _lines(partner_id, window))["amount"]
    return Overview(totals(client, own), team_totals, Decimal(earned), series, funnel)


def _lines(partner_id: str, window: Range) -> LineFilter:
    return LineFilter(start_ms=int(window.start.timestamp() * 1000),
                      end_ms=int(window.end.timestamp() * 1000), partner_id=partner_id)


def link_figures(client: Client, partner_id: str, window: Range,
                 codes: Sequence[tuple[str, ...]]) -> list[LinkFigures]:
    """Each link's people's clicks, visitors and registrations in the range; a link is all the
    codes its clicks may have recorded (its generated code and its alias)."""
    keys = sorted({code for spellings in codes for code in spellings})
    if not keys:
        return []
    f = scoped(partner_id, partner_id, window, downline=False)
    counted = {str(key): (int(humans), int(visitors)) for key, _, humans, visitors in
               queries.rows(client, queries.breakdown_query(f, "link", keys))}
    # Registrations know their click, not its code: one lookup within the partner's clicks.
    registered = links.registrations(client, f, [partner_id], keys)
    return [LinkFigures(
        clicks=sum(counted.get(code, (0, 0))[0] for code in spellings),
        visitors=sum(counted.get(code, (0, 0))[1] for code in spellings),
        registrations=sum(registered.get(code, 0) for code in spellings),
    ) for spellings in codes]


def in_subtree(client: Client, viewer_id: str, partner_id: str) -> bool:
    return partner_scope.in_subtree(client, viewer_id, partner_id)


def downline(client: Client, viewer_id: str, node_id: str, window: Range) -> dict[str, Any]:
    """The children of `node_id` (the caller checked it is in the viewer's subtree), each with
    its subtree's totals, and the node's own subtree totals."""
    f = scoped(node_id, viewer_id, window, downline=False)
    level = tree.tree(client, f, DOWNLINE_LIMIT)
    level["totals"] = totals(client, scoped(node_id, viewer_id, window, downline=True))
    return level


def commission_month(client: Client, partner_id: str, period: str,
                     after: tuple[int, str] | None) -> CommissionMonth:
    f = LineFilter(partner_id=partner_id, period=period)
    rows, cursor = reads.page(client, f, LINES_PER_PAGE, after)
    return CommissionMonth(
        lines=[reads.line_json(row) for row in rows], next_cursor=cursor,
        totals=reads.totals(client, f),
        tier=reads.tier_of(client, partner_id, period, month_start(period)),
        months=statement_months(client, partner_id),
    )


def statement_months(client: Client, partner_id: str) -> list[tuple[str, int, Decimal]]:
    """(month, lines, amount) of the partner's months with lines, newest first."""
    found = client.query(
        f"SELECT period, count(), sum(amount) FROM {DATABASE}.commissions FINAL "  # noqa: S608
        "WHERE partner_id = {partner:String} AND is_deleted = 0 GROUP BY period "
        "ORDER BY period DESC LIMIT {limit:UInt32}",
        parameters={"partner": partner_id, "limit": MONTHS_SHOWN},
    ).result_rows
    return [(str(period), int(n), Decimal(amount)) for period, n, amount in found]


def has_lines(client: Client, partner_id: str, period: str) -> bool:
    found = client.query(
        f"SELECT count() FROM {DATABASE}.commissions FINAL WHERE "  # noqa: S608
        "partner_id = {partner:String} AND period = {period:String} AND is_deleted = 0",
        parameters={"partner": partner_id, "period": period},
    ).result_rows
    return int(found[0][0]) > 0

