"""The dashboard's answers as the API gives them: each question's clicks on the shared client,
its funnel events and commissions beside them on connections of their own (analytics.side), the
JSON of every row. The benchmark (loadtests/events_queries.py) times these same functions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics import closed_clicks, links, names, queries
from analytics.commissions import figures as commission_figures
from analytics.events import queries as funnel_events
from analytics.filters import ClickFilter, filter_json
from analytics.queries import BreakdownRow, SeriesPoint, Summary
from analytics.side import SideParts
from edge.clock import iso_utc

NO_FIGURES: Final = funnel_events.Figures()
ZERO: Final = Decimal(0)


def summary_json(f: ClickFilter, summary: Summary) -> dict[str, Any]:
    return {
        "filter": filter_json(f),
        "clicks": summary.clicks,
        "humanClicks": summary.human_clicks,
        "botClicks": summary.bot_clicks,
        "uniqueVisitors": summary.unique_visitors,
        "registrations": summary.registrations,
        "conversionRate": summary.conversion_rate,
        "suspendedClicks": summary.suspended_clicks,
        "orphanClicks": summary.orphan_clicks,
        "unresolvedClicks": summary.unresolved_clicks,
    }


def point_json(point: SeriesPoint) -> dict[str, Any]:
    return {
        "start": iso_utc(point.start),
        "clicks": point.clicks,
        "humanClicks": point.human_clicks,
        "botClicks": point.bot_clicks,
        "uniqueVisitors": point.unique_visitors,
        "registrations": point.registrations,
    }


def breakdown_row_json(row: BreakdownRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "clicks": row.clicks,
        "humanClicks": row.human_clicks,
        "botClicks": row.bot_clicks,
        "uniqueVisitors": row.unique_visitors,
        "registrations": row.registrations,
    }


def summary(client: Client, side: SideParts, f: ClickFilter) -> dict[str, Any]:
    events = side.submit(lambda other: funnel_events.figures(other, f))
    paid = side.submit(lambda other: commission_figures.total(other, f))
    # The admin's: events no registration names yet.
    unattributed = None if f.partner_scoped else side.submit(
        lambda other: funnel_events.unattributed_events(other, f))
    registered = side.submit(lambda other: queries.registrations(other, f))
    body = summary_json(f, queries.summary(client, f, registered.result))
    body.update(events.result().to_json(paid.result()))
    if unattributed is not None:
        body["unattributedEvents"] = unattributed.result()
    return body


def timeseries(client: Client, side: SideParts, f: ClickFilter,
               interval: str) -> list[dict[str, Any]]:
    events = side.submit(lambda other: funnel_events.figures_by_bucket(other, f, interval))
    paid = side.submit(lambda other: commission_figures.by_bucket(other, f, interval))
    registered = side.submit(lambda other: queries.registrations_by_bucket(other, f, interval))
    points = queries.timeseries(client, f, interval, registered.result)
    by_bucket, paid_by_bucket = events.result(), paid.result()
    return [{**point_json(point), **by_bucket.get(bucket, NO_FIGURES).to_json(
        paid_by_bucket.get(bucket, ZERO))}
        for point in points for bucket in [int(point.start.timestamp())]]


def breakdown(client: Client, side: SideParts, f: ClickFilter, by: str,
              limit: int) -> list[dict[str, Any]]:
    """A dimension of few values has its figures and commissions asked for every value beside
    the clicks' top rows; one of many values (partners, link codes) for its top keys, beside
    their visitors as soon as the keys are known (and so are a link's partner, campaign, sub-ID
    and registrations)."""
    column = queries.dimension_column(by)
    paid = side.submit(lambda other: commission_figures.by_key(other, f, column, None))
    events = side.submit(lambda other: funnel_events.figures_by_key(other, f, column, None)) \
        if column not in funnel_events.MANY_KEYS else None
    # Kept for every key: looked up while the top keys are found.
    kept = side.submit(lambda other: funnel_events.kept_days_of(other, f, column)) \
        if column in funnel_events.EVERY_KEY_KEPT else None
    closer = closed_clicks.closer(client)  # the top keys' kept days serve their rows too
    # A dimension of few values has its registrations asked for every value beside the rest.
    asks_registrations = queries.has_registrations(by)
    registered = side.submit(
        lambda other: queries.breakdown_registrations(other, f, by, None)) \
        if asks_registrations and column not in queries.MANY_KEYS else None
    top = queries.breakdown_keys(client, f, by, limit, closer)
    if events is None and top is not None:
        events = side.submit(lambda other: funnel_events.figures_by_key(
            other, f, column, top, kept.result() if kept is not None else None))
    named = None
    if top is not None:
        # The top keys' registrations and names (partners) beside their visitors.
        if asks_registrations:
            registered = side.submit(
                lambda other: queries.breakdown_registrations(other, f, by, top))
        named = side.submit(lambda other: names.names(other, top)) if by == "partner" else None
    # A link's partner, campaign, sub-ID and registrations come through its clicks.
    link = side.submit(lambda other: links.link_columns(other, f, top)) \
        if by == "link" and top is not None else None
    rows = queries.breakdown(client, f, by, limit, top, closer,
                             registered.result if registered is not None else None)
    keys = [row.key for row in rows]
    if events is None:
        events = side.submit(lambda other: funnel_events.figures_by_key(
            other, f, column, keys, kept.result() if kept is not None else None))
    if by == "link" and link is None:
        link = side.submit(lambda other: links.link_columns(other, f, keys))
    link_of = link.result() if link is not None else {}
    by_key, by_key_paid = events.result(), paid.result()
    beside = {key: {**link_of.get(key, {}), **by_key.get(key, NO_FIGURES).to_json(
        by_key_paid.get(key, ZERO))}
        for key in keys}
    if by == "partner":
        name_of = named.result() if named is not None else names.names(client, keys)
        for key in keys:
            beside[key]["name"] = name_of.get(key)
    return [{**breakdown_row_json(row), **beside[row.key]} for row in rows]


def funnel(client: Client, side: SideParts, f: ClickFilter, cohort: str) -> list[dict[str, Any]]:
    if cohort == "clicks":
        followed = side.submit(lambda other: funnel_events.clicks_cohort(other, f))
        # The cohort's registrations are those the clicks brought (not asked twice).
        clicked = queries.summary(client, f, lambda: followed.result()[0])
        registrations, kyc, ftd, active = followed.result()
    else:
        events = side.submit(lambda other: funnel_events.figures(other, f))
        registered = side.submit(lambda other: queries.registrations(other, f))
        clicked = queries.summary(client, f, registered.result)
        figures = events.result()
        registrations, kyc, ftd, active = (
            clicked.registrations, figures.kyc_approved, figures.first_deposits,
            figures.active_traders,
        )
    counts = [clicked.unique_visitors, registrations, kyc, ftd, active]
    return [step.to_json() for step in funnel_events.steps(counts)]
