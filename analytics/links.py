"""What a breakdown by link adds beside each code: its partner, campaign and sub-ID (as its latest
click recorded them), and the registrations and funnel figures that came through its clicks.

Registrations and events know the click that brought the user (`click_id`), not its code: the
codes of those clicks are looked up in `clicks`, within the links' own partners (one primary-key
range each), and the answers are keyed back to codes with `transform`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics.events import queries as funnel_events
from analytics.filters import ClickFilter
from analytics.queries import QUERY_SETTINGS, Query, rows, select_final
from analytics.rollups import raw_where

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
    where, parameters = raw_where(f, "code IN {codes:Array(String)}")
    sql = (
        f"SELECT code, argMax(partner_id, ts), argMax(campaign, ts), argMax(sub_id, ts) "  # noqa: S608
        f"FROM invite.clicks WHERE {where} GROUP BY code{QUERY_SETTINGS}"
    )
    return Query(sql, {**parameters, "codes": list(codes)})


def registration_clicks_query(partner_ids: Sequence[str], codes: Sequence[str]) -> Query:
    """The clicks of these codes that brought a registration, whenever they were."""
    registered = (
        "SELECT toUUIDOrZero(click_id) FROM invite.conversions "
        "WHERE event_type = 'registration' AND click_id != '' "
        "AND partner_id IN {partners:Array(String)}"
    )
    where = (
        "partner_id IN {partners:Array(String)} AND code IN {codes:Array(String)} "
        f"AND click_id IN ({registered})"
    )
    return Query(
        select_final("DISTINCT toString(click_id), code", "clicks", where),
        {"partners": list(partner_ids), "codes": list(codes)},
    )


def registrations_query(f: ClickFilter, click_ids: list[str], codes: list[str]) -> Query:
    where, parameters = raw_where(
        f, "event_type = 'registration'", "click_id IN {link_click_ids:Array(String)}"
    )
    return Query(
        select_final(f"{_CODE_OF_CLICK} AS key, count()", "conversions", where, "GROUP BY key"),
        {**parameters, "link_click_ids": click_ids, "link_codes": codes},
    )


def link_columns(client: Client, f: ClickFilter, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per code: partnerId, campaign, subId, registrations and the funnel figures."""
    if not codes:
        return {}
    details = {str(code): Link(str(pid), str(campaign), str(sub_id))
               for code, pid, campaign, sub_id in rows(client, details_query(f, codes))}
    partners = sorted({link.partner_id for link in details.values() if link.partner_id})
    pairs = rows(client, registration_clicks_query(partners, codes)) if partners else []
    click_ids = [str(click_id) for click_id, _ in pairs]
    click_codes = [str(code) for _, code in pairs]
    registrations: dict[str, int] = {}
    figures: dict[str, funnel_events.Figures] = {}
    if click_ids:
        registrations = {str(key): int(n) for key, n in
                         rows(client, registrations_query(f, click_ids, click_codes))}
        query = funnel_events.figures_query(f, key=_CODE_OF_CLICK, keys=list(codes))
        bound = {**query.parameters, "link_click_ids": click_ids, "link_codes": click_codes}
        figures = {
            str(row[0]): _figures(row[2:])
            for row in client.query(query.sql, parameters=bound).result_rows
        }
    columns: dict[str, dict[str, Any]] = {}
    for code in codes:
        link = details.get(code, Link("", "", ""))
        columns[code] = {
            "partnerId": link.partner_id or None, "campaign": link.campaign or None,
            "subId": link.sub_id or None, "registrations": registrations.get(code, 0),
            **figures.get(code, funnel_events.Figures()).to_json(),
        }
    return columns


def _figures(row: Sequence[Any]) -> funnel_events.Figures:
    return funnel_events._figures(row)
