"""What a breakdown by link adds beside each code: its partner, campaign and sub-ID (as its clicks
recorded them) and the registrations that came through its clicks. (Its funnel figures are the
credited events' by `code`, like any other key's.)

Registrations know the click that brought the user (`click_id`), not its code: the codes of those
clicks are looked up in `clicks` within the links' own partners (primary-key ranges) and the time
their clicks span, so the lookup stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics.filters import ClickFilter
from analytics.queries import QUERY_SETTINGS, Query, rows
from analytics.rollups import raw_where
from analytics.schema import DATABASE

LAST_DAY: Final = timedelta(days=1)
LATEST: Final = datetime(2286, 1, 1, tzinfo=UTC)  # past any time a DateTime64(3) column holds


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
    """Registrations in the range within the partners, per code of the click that brought them.

    Their clicks are looked up in one statement: the partners' clicks of those codes between the
    earliest and the latest registration click (a click id holds its millisecond, UUIDv7; with ids
    of another kind, from 1970: slower, still right), joined to the registrations on the id (the
    engine filters the clicks by the registrations' ids as it reads them). Unmerged copies of a
    click match once each, so registrations are counted by their event id."""
    where, parameters = raw_where(
        f, "event_type = 'registration'", "click_id != ''", "partner_id IN {partners:Array(String)}"
    )
    registered = (f"SELECT toUUIDOrZero(click_id) AS click, event_id FROM {DATABASE}.conversions "  # noqa: S608
                  f"FINAL WHERE {where}")
    # UUIDv7ToDateTime gives 1970 for any other id: then up to the last time a click can have.
    clicked = "UUIDv7ToDateTime(click, 'UTC')"
    latest = (f"if({clicked} = toDateTime64(0, 3, 'UTC'), {{latest:DateTime64(3, 'UTC')}}, "
              f"{clicked})")
    sql = (
        f"WITH (SELECT (min({clicked}), max({latest})) FROM ({registered})) AS bounds "  # noqa: S608
        f"SELECT k.code, uniqExact(r.event_id) FROM {DATABASE}.clicks AS k "
        f"INNER JOIN ({registered}) AS r ON k.click_id = r.click "
        "WHERE k.partner_id IN {partners:Array(String)} AND k.code IN {codes:Array(String)} "
        "AND k.ts >= bounds.1 AND k.ts <= bounds.2 "
        f"GROUP BY k.code{QUERY_SETTINGS}"
    )
    return Query(sql, {**parameters, "partners": list(partners), "codes": list(codes),
                       "latest": LATEST})


def registrations(client: Client, f: ClickFilter, partners: Sequence[str],
                  codes: Sequence[str]) -> dict[str, int]:
    """Registrations in the range per code of the click that brought them."""
    if not partners or not codes:
        return {}
    return {str(code): int(n) for code, n in rows(client, registrations_query(f, partners, codes))}


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
