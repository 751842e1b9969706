"""What a breakdown by link adds beside each code: its partner, campaign and sub-ID (as its clicks
recorded them), and the registrations and funnel figures that came through its
clicks.

Registrations and events know the click that brought the user (`click_id`), not its code: the
codes of those clicks are looked up in `clicks` within the links' own partners (primary-key ranges)
and only for the click ids of the range's registrations or events, so each lookup stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics.events import queries as funnel_events
from analytics.events import rollups
from analytics.filters import ClickFilter
from analytics.queries import QUERY_SETTINGS, Query, rows
from analytics.rollups import raw_where
from analytics.schema import DATABASE

LAST_DAY: Final = timedelta(days=1)
# A click id → code map, bound as two arrays, written into the SQL of the figures' key.
_CODE_OF_CLICK: Final = (
    "transform(click_id, {link_click_ids:Array(String)}, {link_codes:Array(String)}, '')"
)


@dataclass(frozen=True)
class Link:
    partner_id: str
    campaign: str
    sub_id: str


def details_query(f: ClickFilter, codes: Sequence[str]) -> Query:
    """Each code's partner, campaign and sub-ID (a link's never change: any of its clicks
    tells them); only the code column is read for the other clicks of the range."""
    where, parameters = raw_where(f, "code IN {codes:Array(String)}", "partner_id != ''")
    sql = (
        "SELECT code, any(partner_id), any(campaign), any(sub_id) "  # noqa: S608
        f"FROM {DATABASE}.clicks WHERE {where} GROUP BY code{QUERY_SETTINGS}"
    )
    return Query(sql, {**parameters, "codes": list(codes)})


def _codes_of(click_ids_sql: str) -> str:
    """The (click id, code) of the links' clicks among the ids `click_ids_sql` selects. A click id
    holds its millisecond (UUIDv7), so only the days between the earliest and the latest of them
    are read (ids of another kind read from the beginning: slower, still right)."""
    ids = f"SELECT toUUIDOrZero(click_id) AS id FROM ({click_ids_sql})"  # noqa: S608
    return (
        f"SELECT toString(click_id) AS click_id, code FROM {DATABASE}.clicks "  # noqa: S608
        "WHERE partner_id IN {partners:Array(String)} AND code IN {codes:Array(String)} "
        f"AND ts >= (SELECT min(UUIDv7ToDateTime(id, 'UTC')) FROM ({ids})) "
        f"AND ts <= (SELECT max(if(UUIDv7ToDateTime(id, 'UTC') = 0, now64(3), "
        f"UUIDv7ToDateTime(id, 'UTC'))) FROM ({ids})) "
        f"AND click_id IN ({ids})"
    )


def registrations_query(f: ClickFilter, partners: Sequence[str], codes: Sequence[str]) -> Query:
    """Registrations in the range per code of the click that brought them."""
    where, parameters = raw_where(
        f, "event_type = 'registration'", "click_id != ''", "partner_id IN {partners:Array(String)}"
    )
    registered = f"SELECT click_id FROM {DATABASE}.conversions FINAL WHERE {where}"  # noqa: S608
    sql = (
        f"SELECT k.code, count() FROM ({registered}) AS r "  # noqa: S608
        f"INNER JOIN ({_codes_of(registered)}) AS k ON r.click_id = k.click_id "
        f"GROUP BY k.code{QUERY_SETTINGS}"
    )
    return Query(sql, {**parameters, "partners": list(partners), "codes": list(codes)})


def event_clicks_query(f: ClickFilter, partners: Sequence[str], codes: Sequence[str]) -> Query:
    """The links' clicks that brought the users of the range's credited events."""
    credited, parameters = rollups.click_ids(f)
    return Query(f"{_codes_of(credited)}{QUERY_SETTINGS}",
                 {**parameters, "partners": list(partners), "codes": list(codes)})


def link_columns(client: Client, f: ClickFilter, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per code: partnerId, campaign, subId, registrations and the funnel figures."""
    if not codes:
        return {}
    # The top links clicked on the range's last day are found in one day's partition.
    last_day = ClickFilter(start=max(f.start, f.end - LAST_DAY), end=f.end,
                           partner_id=f.partner_id, include_downline=f.include_downline,
                           campaign=f.campaign, scope_partner_id=f.scope_partner_id)
    details: dict[str, Link] = {}
    for window in (last_day, f):
        missing = [code for code in codes if code not in details]
        found = rows(client, details_query(window, missing)) if missing else []
        for code, pid, campaign, sub_id in found:
            details[str(code)] = Link(str(pid), str(campaign), str(sub_id))
    partners = sorted({link.partner_id for link in details.values() if link.partner_id})
    registrations: dict[str, int] = {}
    figures: dict[str, funnel_events.Figures] = {}
    if partners:
        registrations = {str(code): int(n) for code, n in
                         rows(client, registrations_query(f, partners, codes))}
        pairs = rows(client, event_clicks_query(f, partners, codes))
        if pairs:
            query = funnel_events.figures_query(f, key=_CODE_OF_CLICK, keys=list(codes))
            bound = {**query.parameters, "link_click_ids": [str(c) for c, _ in pairs],
                     "link_codes": [str(code) for _, code in pairs]}
            # The row layout is the funnel module's (figures_by_key binds no extra arrays).
            figures = {str(row[0]): funnel_events._figures(row[2:])
                       for row in client.query(query.sql, parameters=bound).result_rows}
    columns: dict[str, dict[str, Any]] = {}
    for code in codes:
        link = details.get(code, Link("", "", ""))
        columns[code] = {
            "partnerId": link.partner_id or None, "campaign": link.campaign or None,
            "subId": link.sub_id or None, "registrations": registrations.get(code, 0),
            **figures.get(code, funnel_events.Figures()).to_json(),
        }
    return columns
