"""The description of the analytics questions (analytics/api.py) and the erasure routes
(analytics/privacy.py), from the filters' and queries' own names and limits."""

from __future__ import annotations

from typing import Final

from analytics.events.queries import COHORTS, STEPS
from analytics.export import CSV_COLUMNS, MAX_CONCURRENT_EXPORTS
from analytics.filters import (
    DEFAULT_BREAKDOWN_LIMIT,
    MAX_BREAKDOWN_LIMIT,
    MAX_PARAMETER_LENGTH,
    MAX_RANGE,
)
from analytics.privacy import MAX_USER_ID
from analytics.queries import DIMENSIONS, INTERVALS
from analytics.tree import DEFAULT_TREE_LIMIT, MAX_TREE_LIMIT
from edge.openapi import (
    ADMIN,
    CSV,
    DECIMAL_TEXT,
    TIMESTAMP,
    Description,
    Parameter,
    Schema,
    Security,
    answer,
    answer_object,
    array,
    choice,
    errors,
    in_path,
    integer,
    json_answer,
    nullable,
    operation,
    or_empty,
    query,
    ref,
    text,
)
from edge.registry.model import PARTNER_ID_PATTERN, TAG_PATTERN

TAG: Final = "analytics"
VIEWERS: Final[Security] = [{"admin": []}, {"partner": []}]
PARTNER_ID: Final = text(f"^{PARTNER_ID_PATTERN.pattern}$")
DAY_OR_INSTANT: Final = text(max_length=MAX_PARAMETER_LENGTH,
                             description="ISO 8601 date (2025-05-01) or date-time")
FLAG: Final = choice(["true", "false", "1", "0", "yes", "no"])
FROM: Final = query("from", DAY_OR_INSTANT, f"start, UTC (default: 30 days before `to`; the "
                                            f"range spans at most {MAX_RANGE.days} days)")
TO: Final = query("to", DAY_OR_INSTANT, "end, UTC, exclusive; a bare date means its end "
                                        "(default: now)")
PARTNER: Final = query("partnerId", or_empty(PARTNER_ID),
                       "only this partner's clicks (a partner token: its own, or one of its "
                       "subtree)")
DOWNLINE: Final = query("includeDownline", or_empty(FLAG), "with the partner's whole subtree")
CAMPAIGN: Final = query("campaign", or_empty(text(f"^{TAG_PATTERN.pattern}$")),
                        "only this campaign")
FILTER: Final[list[Parameter]] = [FROM, TO, PARTNER, DOWNLINE, CAMPAIGN]
COUNT: Final = integer(0)
CLICKS: Final[dict[str, Schema]] = {
    "clicks": COUNT, "humanClicks": COUNT, "botClicks": COUNT, "uniqueVisitors": COUNT,
    "registrations": COUNT,
}
# What the funnel events add to every row (amounts and lots as exact decimal text).
FIGURES: Final[dict[str, Schema]] = {
    "accounts": COUNT, "kycApproved": COUNT, "firstDeposits": COUNT,
    "firstDepositAmount": DECIMAL_TEXT, "depositors": COUNT, "depositAmount": DECIMAL_TEXT,
    "withdrawalAmount": DECIMAL_TEXT, "activeTraders": COUNT, "lots": DECIMAL_TEXT,
    "brokerRevenue": DECIMAL_TEXT, "commissions": DECIMAL_TEXT,
}
QUESTION_ERRORS: Final = errors(401, 403, 404, 422, 503)


def question(summary: str, answered: Schema, *parameters: Parameter,
             description: str | None = None) -> dict[str, object]:
    return operation(summary, tag=TAG, security=VIEWERS, description=description,
                     parameters=[*FILTER, *parameters],
                     answers={200: json_answer("the answer", answered), **QUESTION_ERRORS})


def answer_with(optional: tuple[str, ...] = (), **properties: Schema) -> Schema:
    return answer_object({"filter": ref("Filter"), **properties}, optional=optional)


ROW: Final = answer_object({
    "key": text(description="the dimension's value (a link's code, a partner id, …)"),
    **CLICKS, **FIGURES, "name": nullable(text(description="by=partner: its name")),
    "partnerId": nullable(text()), "campaign": nullable(text()), "subId": nullable(text()),
}, optional=("name", "partnerId", "campaign", "subId"))
CHILD: Final = answer_object({
    "partnerId": text(), "name": text(), "type": text(), "status": text(), "level": integer(1),
    "childCount": COUNT, **CLICKS, **FIGURES,
})
ERASED: Final = {"type": "object", "additionalProperties": COUNT,
                 "description": "rows or entries erased, by store and table"}

QUESTIONS: Final = Description(
    paths={
        "/api/analytics/summary": {"get": question(
            "Totals for the filter",
            answer_with(**CLICKS, **FIGURES, conversionRate=nullable({"type": "number"}),
                        suspendedClicks=COUNT, orphanClicks=nullable(COUNT),
                        unresolvedClicks=nullable(COUNT),
                        unattributedEvents=integer(0, description="admin: events no "
                                                                  "registration names yet"),
                        optional=("unattributedEvents",)),
            description="orphanClicks and unresolvedClicks are null for a partner's question.")},
        "/api/analytics/timeseries": {"get": question(
            "Totals by hour or day",
            answer_with(interval=choice(INTERVALS), points=array(answer_object(
                {"start": TIMESTAMP, **CLICKS, **FIGURES}))),
            query("interval", choice(INTERVALS), "hour (at most 31 days) or day (default)"))},
        "/api/analytics/breakdown": {"get": question(
            "Totals by a dimension, busiest first",
            answer_with(by=choice(DIMENSIONS), limit=integer(1, MAX_BREAKDOWN_LIMIT),
                        rows=array(ROW)),
            query("by", choice(DIMENSIONS), "the dimension", required=True),
            query("limit", integer(1, MAX_BREAKDOWN_LIMIT),
                  f"rows (default {DEFAULT_BREAKDOWN_LIMIT})"))},
        "/api/analytics/funnel": {"get": question(
            "Visitors to active traders, step by step",
            answer_with(cohort=choice(COHORTS), steps=array(answer_object({
                "step": choice(STEPS), "count": COUNT,
                "rate": nullable({"type": "number", "description": "of the step before"}),
            }))),
            query("cohort", choice(COHORTS), "clicks: the people who clicked in the range, "
                                             "followed to today; events: each step's events in "
                                             "the range (default clicks)"))},
        "/api/analytics/tree": {"get": operation(
            "A partner's children (the roots for the admin), each with its subtree's totals",
            tag=TAG, security=VIEWERS,
            parameters=[FROM, TO, PARTNER, CAMPAIGN,
                        query("limit", integer(1, MAX_TREE_LIMIT),
                              f"children (default {DEFAULT_TREE_LIMIT})")],
            answers={200: json_answer("the children", answer_with(
                path=array(answer_object({"partnerId": text(), "name": text()})),
                childCount=COUNT, limit=integer(1, MAX_TREE_LIMIT), children=array(CHILD))),
                     **QUESTION_ERRORS})},
        "/api/analytics/clicks.csv": {"get": operation(
            "Raw clicks as CSV", tag=TAG, security=VIEWERS, parameters=FILTER,
            description=f"Streamed; at most {MAX_CONCURRENT_EXPORTS} exports at once. Columns: "
                        f"{', '.join(CSV_COLUMNS)}.",
            answers={200: answer("the clicks", {CSV: {"type": "string"}},
                                 headers={"Content-Disposition": "attachment; filename=…"}),
                     **QUESTION_ERRORS, **errors(429)})},
        "/api/privacy/visitors/{visitor_id}": {"delete": operation(
            "Erase a visitor's clicks", tag="privacy", security=ADMIN,
            parameters=[in_path("visitor_id", text("^[\\x21-\\x7e]{1,128}$"),
                                "the visitor id of its clicks")],
            answers={200: json_answer("erased", answer_object(
                {"visitorId": text(), "erased": ERASED})),
                     **errors(401, 403, 422, 503)})},
        "/api/privacy/users/{user_id}": {"delete": operation(
            "Erase a user: registrations, clicks, funnel events, outbox work", tag="privacy",
            security=ADMIN, description="Commission lines stay, without the user's id.",
            parameters=[in_path("user_id", integer(1, MAX_USER_ID), "the cTrader userId")],
            answers={200: json_answer("erased", answer_object(
                {"userId": integer(1), "erased": ERASED})),
                     **errors(401, 403, 422, 503)})},
    },
    components={
        "schemas": {"Filter": answer_object({
            "from": TIMESTAMP, "to": TIMESTAMP, "partnerId": nullable(text()),
            "includeDownline": {"type": "boolean"}, "campaign": nullable(text()),
        }, description="The question's filter, as understood")},
        "securitySchemes": {"partner": {
            "type": "http", "scheme": "bearer",
            "description": "a partner token (POST /api/partners/{partner_id}/tokens): its own "
                           "subtree only"}},
    },
    tags={TAG: "Clicks, registrations and funnel figures: the admin token, or a partner token "
               "for its own subtree",
          "privacy": "Erasing a person's data (admin)"},
)
