"""What a breakdown by link adds beside each code: its partner, campaign and sub-ID (as its clicks
recorded them), and the registrations and funnel figures that came through its
clicks.

Registrations and events know the click that brought the user (`click_id`), not its code: the
codes of those clicks are looked up in `clicks` within the links' own partners (primary-key ranges)
and only for the click ids of the range's registrations or events, so each lookup stays small.
"""

from __future__ import annotations

import uuid
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
LATEST_MS: Final = 9_999_999_999_999  # 2286: a click id that is no UUIDv7 is looked up until then

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


def registered_query(f: ClickFilter, partners: Sequence[str]) -> Query:
    """The range's registrations within the partners, per click id."""
    where, parameters = raw_where(
        f, "event_type = 'registration'", "click_id != ''", "partner_id IN {partners:Array(String)}"
    )
    sql = (f"SELECT click_id, count() FROM {DATABASE}.conversions FINAL WHERE {where} "  # noqa: S608
           f"GROUP BY click_id{QUERY_SETTINGS}")
    return Query(sql, {**parameters, "partners": list(partners)})


def event_clicks_query(f: ClickFilter, partners: Sequence[str]) -> Query:
    """The registration clicks of the users whose events count in the range, within the
    partners (a superset: a cancelled event's click may be among them)."""
    sql, parameters = rollups.click_ids(f, "partner_id IN {partners:Array(String)}")
    return Query(sql + QUERY_SETTINGS, {**parameters, "partners": list(partners)})


def codes_query(partners: Sequence[str], codes: Sequence[str], click_ids: Sequence[str]) -> Query:
    """The (click id, code) of the links' clicks among `click_ids`. A click id holds its
    millisecond (UUIDv7), so only the days between the earliest and the latest of them are read
    (with ids of another kind, every day: slower, still right)."""
    ids = sorted({str(parsed) for parsed in map(_uuid, click_ids) if parsed is not None})
    times = [parsed.int >> 80 for parsed in map(uuid.UUID, ids) if parsed.version == 7]
    low, high = ((0, LATEST_MS) if len(times) < len(ids) or not times
                 else (min(times), max(times)))
    sql = (
        f"SELECT toString(click_id), code FROM {DATABASE}.clicks "  # noqa: S608
        "WHERE partner_id IN {partners:Array(String)} AND code IN {codes:Array(String)} "
        "AND ts >= fromUnixTimestamp64Milli({low:Int64}, 'UTC') "
        "AND ts <= fromUnixTimestamp64Milli({high:Int64}, 'UTC') "
        f"AND click_id IN {{ids:Array(UUID)}}{QUERY_SETTINGS}"
    )
    return Query(sql, {"partners": list(partners), "codes": list(codes), "ids": ids,
                       "low": low, "high": high})


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _registered(client: Client, f: ClickFilter, partners: Sequence[str]) -> dict[str, int]:
    """The range's registrations within the partners per click id (as UUIDs write it)."""
    registered: dict[str, int] = {}
    for click, n in rows(client, registered_query(f, partners)):
        parsed = _uuid(str(click))
        if parsed is not None:  # any other text is no click's id
            registered[str(parsed)] = registered.get(str(parsed), 0) + int(n)
    return registered


def _per_code(registered: dict[str, int], code_of: dict[str, str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for click, n in registered.items():
        if click in code_of:
            found[code_of[click]] = found.get(code_of[click], 0) + n
    return found


def _codes_of(client: Client, partners: Sequence[str], codes: Sequence[str],
              click_ids: Sequence[str]) -> dict[str, str]:
    """Click id → code, for the links' clicks among `click_ids` (one lookup)."""
    if not click_ids:
        return {}
    return {str(click): str(code)
            for click, code in rows(client, codes_query(partners, codes, click_ids))}


def registrations(client: Client, f: ClickFilter, partners: Sequence[str],
                  codes: Sequence[str]) -> dict[str, int]:
    """Registrations in the range per code of the click that brought them."""
    registered = _registered(client, f, partners)
    return _per_code(registered, _codes_of(client, partners, codes, list(registered)))


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
    registered: dict[str, int] = {}
    figures: dict[str, funnel_events.Figures] = {}
    if partners:
        # One lookup of the codes of the registrations' clicks and the events' users' clicks.
        by_click = _registered(client, f, partners)
        clicked = [str(click) for (click,) in rows(client, event_clicks_query(f, partners))]
        code_of = _codes_of(client, partners, codes, sorted({*by_click, *clicked}))
        registered = _per_code(by_click, code_of)
        if code_of:
            figures = funnel_events.figures_by_click_code(client, f, code_of)
    columns: dict[str, dict[str, Any]] = {}
    for code in codes:
        link = details.get(code, Link("", "", ""))
        columns[code] = {
            "partnerId": link.partner_id or None, "campaign": link.campaign or None,
            "subId": link.sub_id or None, "registrations": registered.get(code, 0),
            **figures.get(code, funnel_events.Figures()).to_json(),
        }
    return columns
