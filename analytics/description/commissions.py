"""The description of the commissions routes (analytics/commissions/api.py): plans, the ledger's
lines, periods and statements, from the plans' and ledger's own names and limits."""

from __future__ import annotations

import functools
from typing import Final

from analytics.commissions import plans
from analytics.commissions.reads import DEFAULT_LIMIT, KINDS, MAX_LIMIT
from analytics.commissions.statements import CSV_COLUMNS
from analytics.description.questions import DOWNLINE, FROM, PARTNER_ID, TO, VIEWERS
from edge.openapi import (
    ADMIN,
    CSV,
    DECIMAL_TEXT,
    JSON,
    TIMESTAMP,
    Description,
    Schema,
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
    request_object,
    text,
)
from edge.registry.model import PLAN_ID_PATTERN

TAG: Final = "commissions"
PERIOD_PATTERN: Final = "(20[0-9]{2}|21[0-9]{2})-(0[1-9]|1[0-2])"
PERIOD: Final = text(f"^{PERIOD_PATTERN}$", description="a month, YYYY-MM")
PERIOD_IN_PATH: Final = in_path("period", PERIOD, "the month")
PLAN_IN_PATH: Final = in_path("plan_id", text(f"^{PLAN_ID_PATTERN.pattern}$"), "the plan's id")
DECIMAL_IN: Final[Schema] = {"type": ["string", "number"],
                             "description": 'a decimal of at least 0: "6.5" or 6.5'}
ADMIN_ERRORS: Final = errors(401, 403, 422, 503)

TERMS: Final = {
    "name": text(min_length=1, max_length=plans.MAX_NAME),
    "cpa": request_object({
        "amount": DECIMAL_IN, "minFirstDeposit": DECIMAL_IN, "minLots": DECIMAL_IN,
        "withinDays": integer(1, plans.MAX_WITHIN_DAYS),
    }, required=["amount"]),
    "rebates": array(request_object({
        "symbols": array(text(description="a glob: EURUSD, XAU*, *"), min_items=1,
                         max_items=plans.MAX_GLOBS),
        "perLot": DECIMAL_IN,
    }, required=["symbols", "perLot"]), max_items=plans.MAX_RULES),
    "revenueShare": DECIMAL_IN,
    "levels": request_object({"mode": choice(plans.MODES),
                              "shares": array(DECIMAL_IN, min_items=1,
                                              max_items=plans.MAX_LEVELS)}, required=["shares"]),
    "tiers": array(request_object({
        "name": text(min_length=1, max_length=plans.MAX_TIER_NAME), "multiplier": DECIMAL_IN,
        "minActiveTraders": integer(0), "minLots": DECIMAL_IN, "minFirstDeposits": integer(0),
    }, required=["name", "multiplier"]), max_items=plans.MAX_TIERS),
}
PLAN_BODY: Final = request_object({
    **{name: schema if name == "name" else nullable(schema) for name, schema in TERMS.items()},
    "effectiveFrom": {"type": ["string", "integer"],
                      "description": "ISO 8601 or ms since the epoch (default: now)"},
}, description="Every part is optional (README, \"Commissions\").")
PLAN_EXAMPLE: Final = {
    "name": "Standard IB", "effectiveFrom": "2026-12-01T00:00:00Z",
    "cpa": {"amount": "250", "minFirstDeposit": "200", "minLots": "1", "withinDays": 30},
    "rebates": [{"symbols": ["EURUSD", "GBPUSD"], "perLot": "6"},
                {"symbols": ["XAU*"], "perLot": "10"}, {"symbols": ["*"], "perLot": "3"}],
    "revenueShare": "0.20", "levels": {"mode": "override", "shares": ["1", "0.2", "0.1"]},
    "tiers": [{"name": "Bronze", "multiplier": "1"},
              {"name": "Silver", "minActiveTraders": 20, "multiplier": "1.1"},
              {"name": "Gold", "minLots": "1000", "multiplier": "1.25"}],
}
PLAN_VERSION: Final = answer_object({
    "planId": text(), "version": integer(1), "effectiveFrom": TIMESTAMP, "createdAt": TIMESTAMP,
    "name": text(), "levels": answer_object({"mode": choice(plans.MODES),
                                             "shares": array(DECIMAL_TEXT)}),
    "cpa": answer_object({"amount": DECIMAL_TEXT, "minFirstDeposit": DECIMAL_TEXT,
                          "minLots": DECIMAL_TEXT, "withinDays": integer(1)},
                         optional=("withinDays",)),
    "rebates": array(answer_object({"symbols": array(text()), "perLot": DECIMAL_TEXT})),
    "revenueShare": DECIMAL_TEXT,
    "tiers": array(answer_object({
        "name": text(), "multiplier": DECIMAL_TEXT, "minActiveTraders": integer(0),
        "minLots": DECIMAL_TEXT, "minFirstDeposits": integer(0),
    }, optional=("minActiveTraders", "minLots", "minFirstDeposits"))),
}, optional=("cpa", "rebates", "revenueShare", "tiers"))
LINE: Final = answer_object({
    "lineId": text(), "period": PERIOD, "ts": TIMESTAMP, "partnerId": text(),
    "level": integer(1), "sourcePartnerId": text(), "userId": text(), "eventId": text(),
    "kind": choice(KINDS), "base": DECIMAL_TEXT, "rate": DECIMAL_TEXT,
    "multiplier": DECIMAL_TEXT, "amount": DECIMAL_TEXT, "currency": text(), "planId": text(),
    "planVersion": integer(0), "tier": nullable(text()), "status": choice(["open", "closed",
                                                                           "paid"]),
    "excluded": nullable(text()), "reverses": nullable(text()), "adjusts": nullable(text()),
    "adjustsPeriod": nullable(text()),
})
AMOUNTS: Final = {
    "lines": integer(0), "amount": DECIMAL_TEXT,
    "byKind": answer_object({kind: DECIMAL_TEXT for kind in KINDS}),
    "byLevel": array(answer_object({"level": integer(1), "amount": DECIMAL_TEXT})),
}
ADJUSTMENTS: Final = answer_object({"lines": integer(0), "amount": DECIMAL_TEXT})
PERIOD_STATE: Final = answer_object({
    "period": PERIOD, "status": choice(["open", "closed", "paid"]),
    "closedAt": nullable(TIMESTAMP), "paidAt": nullable(TIMESTAMP), "reference": nullable(text()),
})
STATEMENT: Final = answer_object({
    "partnerId": text(), "name": nullable(text()), "period": PERIOD,
    **{key: PERIOD_STATE["properties"][key] for key in ("status", "closedAt", "paidAt",
                                                        "reference")},
    "currency": text(), "tier": nullable(text()), "totals": answer_object(AMOUNTS),
    "adjustments": ADJUSTMENTS, "lines": array(ref("CommissionLine")),
    "linesTruncated": {"type": "boolean"},
})


# An admin route of this part.
admin: Final = functools.partial(operation, tag=TAG, security=ADMIN)


LINE_FILTER: Final = [
    FROM, TO, DOWNLINE,
    query("partnerId", or_empty(PARTNER_ID),
          "lines this partner earns (a partner token: its own only)"),
    query("kind", or_empty(choice(KINDS)), "only lines of this kind"),
    query("period", or_empty(PERIOD), "only this month's lines"),
]

COMMISSIONS: Final = Description(
    paths={
        "/api/plans": {"get": admin(
            "Every plan: the version in force and all versions",
            answers={200: json_answer("the plans", answer_object({"plans": array(answer_object({
                "planId": text(), "current": nullable(ref("PlanVersion")),
                "versions": array(ref("PlanVersion"))}))})), **ADMIN_ERRORS})},
        "/api/plans/{plan_id}": {
            "get": admin("The plan version in force at a moment", parameters=[
                PLAN_IN_PATH, query("at", text(max_length=200), "ISO 8601 or ms (default: now)")],
                answers={200: json_answer("the version", {"allOf": [
                    ref("PlanVersion"), answer_object({"versions": integer(1)})]}),
                         **ADMIN_ERRORS, **errors(404)}),
            "put": admin(
                "Add a plan version", parameters=[PLAN_IN_PATH], body={JSON: PLAN_BODY},
                example=PLAN_EXAMPLE,
                description="A version in force never changes: this adds one from its "
                            "effectiveFrom (never inside a closed period).",
                answers={200: json_answer("a version added", ref("PlanVersion")),
                         201: json_answer("the plan created", ref("PlanVersion")),
                         **ADMIN_ERRORS, **errors(400, 413)}),
        },
        "/api/commissions": {"get": operation(
            "The ledger's lines, with their totals", tag=TAG, security=VIEWERS,
            parameters=[*LINE_FILTER,
                        query("limit", integer(1, MAX_LIMIT), f"lines (default {DEFAULT_LIMIT})"),
                        query("cursor", text(max_length=200), "the previous page's nextCursor")],
            answers={200: json_answer("a page of lines", answer_object({
                "lines": array(ref("CommissionLine")), "nextCursor": nullable(text()),
                "totals": answer_object({**AMOUNTS, "adjustments": ADJUSTMENTS}),
                "currency": text()})), **ADMIN_ERRORS, **errors(404)})},
        "/api/commissions.csv": {"get": operation(
            "The ledger's lines as CSV", tag=TAG, security=VIEWERS, parameters=LINE_FILTER,
            description=f"Columns: {', '.join(CSV_COLUMNS)}.",
            answers={200: answer("the lines", {CSV: {"type": "string"}}),
                     **ADMIN_ERRORS, **errors(404)})},
        "/api/periods": {"get": admin(
            "Months closed or paid", answers={200: json_answer("the months", answer_object(
                {"periods": array(ref("PeriodState"))})), **ADMIN_ERRORS})},
        "/api/periods/{period}/close": {"post": admin(
            "Close a month: its lines are frozen, partners told their statement is ready",
            parameters=[PERIOD_IN_PATH],
            answers={200: json_answer("closed", {"allOf": [ref("PeriodState"), answer_object({
                "alreadyClosed": {"type": "boolean"}, "partners": integer(0),
                "lines": integer(0), "amount": DECIMAL_TEXT, "currency": text(),
            }, optional=("alreadyClosed", "partners", "lines", "amount", "currency"))]}),
                     **ADMIN_ERRORS, **errors(409)})},
        "/api/periods/{period}/paid": {"post": admin(
            "Mark a closed month paid", parameters=[PERIOD_IN_PATH],
            body={JSON: request_object({"reference": text(min_length=1, max_length=128)},
                                       required=["reference"])},
            example={"reference": "BATCH-2026-11"},
            answers={200: json_answer("paid", {"allOf": [ref("PeriodState"), answer_object(
                {"alreadyPaid": {"type": "boolean"}}, optional=("alreadyPaid",))]}),
                     **ADMIN_ERRORS, **errors(400, 409, 413)})},
        "/api/periods/{period}/recompute": {"post": admin(
            "Compute an open month again", parameters=[PERIOD_IN_PATH],
            answers={200: json_answer("computed", answer_object({
                "period": PERIOD, "computed": array(PERIOD), "usersUpdated": integer(0)})),
                     **ADMIN_ERRORS, **errors(409)})},
        "/api/statements/{partner_id}/{period}": {"get": operation(
            "A partner's statement for a month", tag=TAG, security=VIEWERS,
            description="`2025-05` or `2025-05.json` (JSON), `.csv`, `.pdf`.",
            parameters=[in_path("partner_id", PARTNER_ID, "the partner"),
                        in_path("period", text(f"^{PERIOD_PATTERN}(\\.(json|csv|pdf))?$"),
                                "the month, with the format's suffix")],
            answers={200: answer("the statement", {
                JSON: ref("Statement"), CSV: {"type": "string"},
                "application/pdf": {"type": "string", "contentMediaType": "application/pdf"}}),
                     **ADMIN_ERRORS, **errors(404)})},
    },
    components={"schemas": {
        "PlanVersion": PLAN_VERSION, "CommissionLine": LINE, "PeriodState": PERIOD_STATE,
        "Statement": STATEMENT,
    }},
    tags={TAG: "Plans, the ledger, periods and statements (admin; a partner token reads its "
               "own lines and statements)"},
)
