"""What a breakdown by link adds beside each code: its partner, campaign and sub-ID (as its clicks
recorded them) and the registrations that came through its clicks. (Its funnel figures are the
credited events' by `code`, like any other key's.)

Registrations know the click that brought the user (`click_id`), not its code: the batcher looks
it up once and stores it with the registration (analytics/registration_codes.py), so they are
counted from that table alone. Those it has no code for (their click was not in `clicks` yet) are
looked up in `clicks` at the question, within the links' own partners (primary-key ranges) and
the time their clicks span. A link's partner, campaign and sub-ID are found once in its clicks and
kept (`link_details`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from analytics import registration_codes
from analytics.filters import ClickFilter
from analytics.queries import QUERY_SETTINGS, Query, rows
from analytics.rollups import raw_where
from analytics.schema import DATABASE, LINK_DETAILS

LAST_DAY: Final = timedelta(days=1)
log = logging.getLogger("invite.analytics")


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


def details(client: Client, f: ClickFilter, codes: Sequence[str]) -> dict[str, Link]:
    """The codes' partners, campaigns and sub-IDs: those found once are read from
    `link_details` (a link's never change), the others from their clicks (the range's last day
    first: the top links' clicks are there), then stored."""
    found: dict[str, Link] = {}
    try:
        stored = client.query(
            f"SELECT code, any(partner_id), any(campaign), any(sub_id) FROM "  # noqa: S608
            f"{DATABASE}.{LINK_DETAILS} WHERE code IN {{codes:Array(String)}} GROUP BY code",
            parameters={"codes": list(codes)}).result_rows
    except ClickHouseError as exc:  # a server user without the rights: from the clicks
        log.warning("%s not read, the links' details come from their clicks: %s",
                    LINK_DETAILS, exc)
        stored = []
    for code, pid, campaign, sub_id in stored:
        found[str(code)] = Link(str(pid), str(campaign), str(sub_id))
    known = set(found)
    last_day = ClickFilter(start=max(f.start, f.end - LAST_DAY), end=f.end,
                           partner_id=f.partner_id, include_downline=f.include_downline,
                           campaign=f.campaign, scope_partner_id=f.scope_partner_id)
    for window in (last_day, f):
        missing = [code for code in codes if code not in found]
        for code, pid, campaign, sub_id in rows(
                client, details_query(window, missing)) if missing else []:
            found[str(code)] = Link(str(pid), str(campaign), str(sub_id))
    new = [[code, link.partner_id, link.campaign, link.sub_id]
           for code, link in found.items() if code not in known]
    if new:
        try:
            client.insert(f"{DATABASE}.{LINK_DETAILS}", new,
                          column_names=["code", "partner_id", "campaign", "sub_id"])
        except ClickHouseError as exc:
            log.warning("%s not stored: %s", LINK_DETAILS, exc)
    return found


def registrations_query(f: ClickFilter, partners: Sequence[str], codes: Sequence[str]) -> Query:
    """Registrations in the range within the partners, per code of the click that brought them,
    as `registration_codes` knows them (its latest row of each, FINAL); and how many it has no
    code for yet (code '', looked up by missing_query)."""
    where, parameters = raw_where(
        f, "partner_id IN {partners:Array(String)}", "click_id != ''",
        "(code IN {codes:Array(String)} OR code = '')")
    sql = (
        "SELECT code, count() "  # noqa: S608
        f"FROM {DATABASE}.{registration_codes.TABLE} FINAL WHERE {where} "
        f"GROUP BY code{QUERY_SETTINGS}"
    )
    return Query(sql, {**parameters, "partners": list(partners), "codes": list(codes)})


def missing_query(f: ClickFilter, partners: Sequence[str], codes: Sequence[str]) -> Query:
    """The registrations registration_codes has no code for, their clicks looked up in
    `clicks`: the partners' clicks between the earliest and the latest of them (a click id holds
    its millisecond, UUIDv7), joined on the id (the engine filters the clicks by the
    registrations' ids as it reads them). Unmerged copies of a click match once each: counted
    by event id."""
    where, parameters = raw_where(f, "partner_id IN {partners:Array(String)}", "code = ''")
    looked_up = registration_codes.codes_of(
        registration_codes.registered(where, table=registration_codes.TABLE),
        "{partners:Array(String)}", "{codes:Array(String)}")
    sql = f"SELECT code, count() FROM ({looked_up}) GROUP BY code{QUERY_SETTINGS}"  # noqa: S608
    return Query(sql, {**parameters, "partners": list(partners), "codes": list(codes)})


def registrations(client: Client, f: ClickFilter, partners: Sequence[str],
                  codes: Sequence[str]) -> dict[str, int]:
    """Registrations in the range per code of the click that brought them."""
    if not partners or not codes:
        return {}
    counted: dict[str, int] = {}
    for code, n in rows(client, registrations_query(f, partners, codes)):
        counted[str(code)] = int(n)
    if counted.pop("", 0):
        for code, n in rows(client, missing_query(f, partners, codes)):
            counted[str(code)] = counted.get(str(code), 0) + int(n)
    return counted


def link_columns(client: Client, f: ClickFilter, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per code: partnerId, campaign, subId and registrations."""
    if not codes:
        return {}
    found = details(client, f, codes)
    partners = sorted({link.partner_id for link in found.values() if link.partner_id})
    registered = registrations(client, f, partners, codes) if partners else {}
    columns: dict[str, dict[str, Any]] = {}
    for code in codes:
        link = found.get(code, Link("", "", ""))
        columns[code] = {
            "partnerId": link.partner_id or None, "campaign": link.campaign or None,
            "subId": link.sub_id or None, "registrations": registered.get(code, 0),
        }
    return columns
