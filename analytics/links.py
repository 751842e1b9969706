"""What a breakdown by link adds beside each code: its partner, campaign and sub-ID (as its clicks
recorded them) and the registrations that came through its clicks. (Its funnel figures are the
credited events' by `code`, like any other key's.)

Registrations know the click that brought the user (`click_id`), not its code: the batcher looks
it up once and stores it (analytics/registration_codes.py). The registrations it has not stored
(their click was not in `clicks` yet) are looked up in `clicks` at the question, within the links'
own partners (primary-key ranges) and the time their clicks span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics import registration_codes
from analytics.filters import ClickFilter
from analytics.queries import QUERY_SETTINGS, Query, rows
from analytics.rollups import raw_where
from analytics.schema import DATABASE

LAST_DAY: Final = timedelta(days=1)


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


def registrations_query(f: ClickFilter, partners: Sequence[str], codes: Sequence[str]) -> Query:
    """Registrations in the range within the partners, per code of the click that brought them,
    as `registration_codes` knows them; and how many it does not know yet (code '', last column
    1), for missing_query. (Its rows are not read FINAL: copies of a registration and click
    hold the same code, a click's, and the registrations are counted by event id.)"""
    where, parameters = raw_where(f, "partner_id IN {partners:Array(String)}")
    found = registration_codes.registered(where)
    sql = (
        "SELECT c.code, uniqExact(r.event_id), c.event_id = '' AS missing "  # noqa: S608
        f"FROM ({found}) AS r LEFT JOIN (SELECT event_id, click_id, code FROM "
        f"{DATABASE}.{registration_codes.TABLE}) AS c "
        "ON r.event_id = c.event_id AND r.click_id = c.click_id "
        "WHERE c.code IN {codes:Array(String)} OR c.event_id = '' "
        f"GROUP BY c.code, missing{QUERY_SETTINGS}"
    )
    return Query(sql, {**parameters, "partners": list(partners), "codes": list(codes)})


def missing_query(f: ClickFilter, partners: Sequence[str], codes: Sequence[str]) -> Query:
    """The registrations registration_codes does not know, their clicks looked up in `clicks`:
    the partners' clicks between the earliest and the latest of them (a click id holds its
    millisecond, UUIDv7), joined on the id (the engine filters the clicks by the registrations'
    ids as it reads them). Unmerged copies of a click match once each: counted by event id."""
    where, parameters = raw_where(
        f, "partner_id IN {partners:Array(String)}",
        f"(event_id, click_id) NOT IN (SELECT event_id, click_id "  # noqa: S608
        f"FROM {DATABASE}.{registration_codes.TABLE})")
    looked_up = registration_codes.codes_of(
        registration_codes.registered(where), "{partners:Array(String)}", "{codes:Array(String)}")
    sql = f"SELECT code, count() FROM ({looked_up}) GROUP BY code{QUERY_SETTINGS}"  # noqa: S608
    return Query(sql, {**parameters, "partners": list(partners), "codes": list(codes)})


def registrations(client: Client, f: ClickFilter, partners: Sequence[str],
                  codes: Sequence[str]) -> dict[str, int]:
    """Registrations in the range per code of the click that brought them."""
    if not partners or not codes:
        return {}
    counted: dict[str, int] = {}
    missing = 0
    for code, n, unknown in rows(client, registrations_query(f, partners, codes)):
        if unknown:
            missing = int(n)
        else:
            counted[str(code)] = int(n)
    if missing:
        for code, n in rows(client, missing_query(f, partners, codes)):
            counted[str(code)] = counted.get(str(code), 0) + int(n)
    return counted


def link_columns(client: Client, f: ClickFilter, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per code: partnerId, campaign, subId and registrations."""
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
    registered = registrations(client, f, partners, codes) if partners else {}
    columns: dict[str, dict[str, Any]] = {}
    for code in codes:
        link = details.get(code, Link("", "", ""))
        columns[code] = {
            "partnerId": link.partner_id or None, "campaign": link.campaign or None,
            "subId": link.sub_id or None, "registrations": registered.get(code, 0),
        }
    return columns
