"""The commissions routes over HTTP: plans, lines, periods (close, late events as adjustments,
paid), statements as JSON, CSV and PDF, and what a partner token may read."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.streams import NOTIFICATION_STREAM
from tests.analytics.commissions.conftest import Programme, ms
from tests.analytics.commissions.test_rules import deposit, reversal, trade
from tests.analytics.fixtures_api import click, insert_clicks
from tests.analytics.test_api import AnalyticsServer

pytestmark = pytest.mark.servers

PLAN: dict[str, Any] = {
    "name": "Standard IB", "effectiveFrom": "2026-09-01T00:00:00Z",
    "cpa": {"amount": "250", "minFirstDeposit": "200", "minLots": "1", "withinDays": 30},
    "rebates": [{"symbols": ["EURUSD", "GBPUSD"], "perLot": "6"},
                {"symbols": ["XAU*"], "perLot": "10"}, {"symbols": ["*"], "perLot": "3"}],
    "revenueShare": "0.20",
    "levels": {"mode": "override", "shares": ["1", "0.2", "0.1"]},
    "tiers": [{"name": "Bronze", "multiplier": "1"},
              {"name": "Silver", "minActiveTraders": 20, "multiplier": "1.1"}],
}


def put_plan(api: AnalyticsServer, plan_id: str, body: dict[str, Any]) -> Any:
    with api.admin() as admin:
        return admin.put(f"/api/plans/{plan_id}", json=body)


def setup_month(programme: Programme, api: AnalyticsServer) -> None:
    """master > ib > sub on the standard plan; user 7 of sub trades and deposits in November."""
    assert put_plan(api, "std", PLAN).status_code == 201
    programme.partner("master", plan_id="std")
    programme.partner("ib", parent_id="master")
    programme.partner("sub", parent_id="ib")
    programme.register(7, "sub", ms("2026-11-01T00:00:00"), ancestors=["master", "ib"])
    programme.post(deposit("d1", "2026-11-02T00:00:00", "300"),
                   trade("t1", "2026-11-03T00:00:00", "EURUSD", "1.5", "7.50", "3.00"),
                   trade("t2", "2026-11-04T00:00:00", "XAUUSD", "0.3"))
    programme.compute()


def test_a_plan_put_twice_is_one_version_and_a_change_adds_one(
    programme: Programme, ledger_api: AnalyticsServer,
) -> None:
    first = put_plan(ledger_api, "std", PLAN)
    assert first.status_code == 201
    assert (first.json()["version"], first.json()["effectiveFrom"]) == (
        1, "2026-09-01T00:00:00.000Z")
    again = put_plan(ledger_api, "std", PLAN)
    assert (again.status_code, again.json()["version"]) == (200, 1)
    changed = put_plan(ledger_api, "std", {**PLAN, "effectiveFrom": "2026-11-15T00:00:00Z",
                                           "revenueShare": "0.25"})
    assert (changed.status_code, changed.json()["version"]) == (200, 2)
    with ledger_api.admin() as admin:
        before = admin.get("/api/plans/std", params={"at": "2026-11-14T00:00:00Z"}).json()
        after = admin.get("/api/plans/std", params={"at": "2026-11-16T00:00:00Z"}).json()
        listing = admin.get("/api/plans").json()
        missing = admin.get("/api/plans/nope")
        too_early = admin.get("/api/plans/std", params={"at": "2026-01-01"})
    assert (before["version"], before["revenueShare"]) == (1, "0.2")
    assert (after["version"], after["revenueShare"]) == (2, "0.25")
    assert [len(plan["versions"]) for plan in listing["plans"]] == [2]
    assert missing.status_code == too_early.status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"levels": {"mode": "split", "shares": ["0.7", "0.4"]}}, "levels.shares"),
    ({"revenueShare": "-0.1"}, "revenueShare"),
    ({"revenueShare": 0.1}, "revenueShare"),  # a float in JSON is read exactly: fine
    ({"bonus": "1"}, "bonus"),
    ({"cpa": {"amount": "10", "minLots": "x"}}, "cpa.minLots"),
    ({"rebates": [{"symbols": ["*"], "perLot": "1"}, {"symbols": ["EURUSD"], "perLot": "2"}]},
     "rebates[1].symbols[0]"),
    ({"rebates": [{"symbols": ["EUR USD"], "perLot": "1"}]}, "rebates[0].symbols[0]"),
    ({"rebates": [{"symbols": ["EURUSD"], "perLot": "1.123456789"}]}, "rebates[0].perLot"),
    ({"tiers": [{"name": "A", "multiplier": "1"}, {"name": "A", "multiplier": "2"}]},
     "tiers[1].name"),
    ({"cpa": {"amount": "10", "withinDays": "٣"}}, "cpa.withinDays"),
    ({"effectiveFrom": "yesterday"}, "effectiveFrom"),
])
def test_a_bad_plan_is_refused_naming_the_field(
    programme: Programme, ledger_api: AnalyticsServer, body: dict[str, Any], field: str,
) -> None:
    response = put_plan(ledger_api, "std", {"name": "Plan", **body})
    if field == "revenueShare" and body.get("revenueShare") == 0.1:
        assert response.status_code == 201, response.text
        assert response.json()["revenueShare"] == "0.1"
        return
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert field in error["message"]
    if error["code"] == "invalid_plan":
        assert error["field"] == field


def test_lines_page_by_cursor_and_a_partner_token_reads_only_its_own(
    programme: Programme, ledger_api: AnalyticsServer,
) -> None:
    setup_month(programme, ledger_api)
    with ledger_api.admin() as admin:
        everything_response = admin.get("/api/commissions", params={"period": "2026-11"})
        assert everything_response.status_code == 200, everything_response.text
        everything = everything_response.json()
        first = admin.get("/api/commissions", params={"period": "2026-11", "limit": "4"}).json()
        rest = admin.get("/api/commissions", params={
            "period": "2026-11", "limit": "100", "cursor": first["nextCursor"]}).json()
        downline = admin.get("/api/commissions", params={
            "partnerId": "ib", "includeDownline": "true", "kind": "rebate"}).json()
        unknown = admin.get("/api/commissions", params={"partnerId": "nobody"})
        bad_cursor = admin.get("/api/commissions", params={"cursor": first["nextCursor"] + "="})
    # t1: rebate 9.00/1.80/0.90, revenue share 2.10/0.42/0.21; t2: rebate 3.00/0.60/0.30;
    # CPA (300 deposited, 1.8 lots): 250/50/25.
    assert everything["totals"]["lines"] == 12
    assert everything["totals"]["amount"] == "343.33"
    assert everything["totals"]["byKind"] == {
        "cpa": "325.00", "rebate": "15.60", "revenue_share": "2.73", "reversal": "0.00"}
    assert [line["lineId"] for line in first["lines"] + rest["lines"]] == [
        line["lineId"] for line in everything["lines"]]
    assert rest["nextCursor"] is None
    assert {line["partnerId"] for line in downline["lines"]} == {"ib", "sub"}
    assert unknown.status_code == 404 and bad_cursor.status_code == 422
    with ledger_api.partner("sub") as sub:
        own = sub.get("/api/commissions").json()
        parent = sub.get("/api/commissions", params={"partnerId": "ib"})
        sibling_tree = sub.get("/api/commissions", params={"includeDownline": "true"})
        parents_statement = sub.get("/api/statements/ib/2026-11")
    assert {line["partnerId"] for line in own["lines"]} == {"sub"}
    assert own["totals"]["amount"] == "264.10"
    assert parent.status_code == sibling_tree.status_code == 403
    assert parents_statement.status_code == 403


def test_a_closed_month_is_frozen_and_a_late_trade_is_an_adjustment_in_the_next(
    programme: Programme, ledger_api: AnalyticsServer, redis_client: redis.Redis,
) -> None:
    setup_month(programme, ledger_api)
    with ledger_api.admin() as admin:
        not_ended = admin.post("/api/periods/2026-12/close")
        unpaid = admin.post("/api/periods/2026-11/paid", json={"reference": "BATCH-1"})
        closed = admin.post("/api/periods/2026-11/close")
        again = admin.post("/api/periods/2026-11/close")
    assert not_ended.status_code == unpaid.status_code == 409
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["lines"], closed.json()["amount"]) == (
        "closed", 12, "343.33")
    assert again.json()["alreadyClosed"] is True
    notices = [orjson.loads(fields[b"e"]) for _, fields in redis_client.xrange(NOTIFICATION_STREAM)]
    assert sorted((n["partnerId"], n["amount"]) for n in notices
                  if n["type"] == "commission.statement") == [
        ("ib", "52.82"), ("master", "26.41"), ("sub", "264.10")]
    # A trade of November arrives late, and a reversal of t2 in December.
    programme.post(trade("t3", "2026-11-20T00:00:00", "EURUSD", "1"),
                   reversal("r2", "2026-12-01T00:00:00", "t2"))
    programme.compute()
    november = programme.lines(period="2026-11")
    december = programme.lines(period="2026-12")
    assert len(november) == 12 and {line["event_id"] for line in november} == {"t1", "t2"}
    assert [(line["kind"], line["event_id"], line["partner_id"], line["amount"],
             line["adjusts"] != "") for line in december] == [
        ("rebate", "t3", "sub", Decimal("6.00"), True),
        ("rebate", "t3", "ib", Decimal("1.20"), True),
        ("rebate", "t3", "master", Decimal("0.60"), True),
        ("reversal", "r2", "sub", Decimal("-3.00"), False),
        ("reversal", "r2", "ib", Decimal("-0.60"), False),
        ("reversal", "r2", "master", Decimal("-0.30"), False),
    ]
    with ledger_api.admin() as admin:
        paid = admin.post("/api/periods/2026-11/paid", json={"reference": "BATCH-1"})
        repeat = admin.post("/api/periods/2026-11/paid", json={"reference": "BATCH-1"})
        other = admin.post("/api/periods/2026-11/paid", json={"reference": "BATCH-2"})
        bad = admin.post("/api/periods/2026-11/paid", json={"ref": "x"})
        statuses = admin.get("/api/commissions", params={"period": "2026-11"}).json()
        plan_back = admin.put("/api/plans/std", json={**PLAN, "revenueShare": "0.3",
                                                       "effectiveFrom": "2026-11-20T00:00:00Z"})
    assert (paid.status_code, paid.json()["status"], paid.json()["reference"]) == (
        200, "paid", "BATCH-1")
    assert repeat.status_code == 200 and other.status_code == 409 and bad.status_code == 422
    assert {line["status"] for line in statuses["lines"]} == {"paid"}
    assert plan_back.status_code == 422
    assert plan_back.json()["error"]["field"] == "effectiveFrom"


def test_a_statement_comes_as_json_csv_and_pdf(
    programme: Programme, ledger_api: AnalyticsServer,
) -> None:
    setup_month(programme, ledger_api)
    with ledger_api.partner("ib") as ib:
        body = ib.get("/api/statements/ib/2026-11").json()
        as_csv = ib.get("/api/statements/ib/2026-11.csv")
        as_pdf = ib.get("/api/statements/ib/2026-11.pdf")
        other_format = ib.get("/api/statements/ib/2026-11.xlsx")
    assert (body["partnerId"], body["period"], body["status"], body["currency"]) == (
        "ib", "2026-11", "open", "USD")
    assert body["tier"] == "Bronze"
    assert body["totals"]["amount"] == "52.82"
    assert body["totals"]["byLevel"] == [{"level": 2, "amount": "52.82"}]
    assert body["adjustments"] == {"lines": 0, "amount": "0.00"}
    assert len(body["lines"]) == 4 and body["linesTruncated"] is False
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert sorted(row["amount"] for row in rows) == ["0.42", "0.60", "1.80", "50.00"]
    assert as_pdf.headers["content-type"] == "application/pdf"
    assert as_pdf.content.startswith(b"%PDF-")
    assert other_format.status_code == 404


def test_recomputing_a_month_gives_the_same_lines(
    programme: Programme, ledger_api: AnalyticsServer,
) -> None:
    setup_month(programme, ledger_api)
    before = programme.lines()
    with ledger_api.admin() as admin:
        response = admin.post("/api/periods/2026-11/recompute")
        future = admin.post("/api/periods/2031-01/recompute")
    assert response.status_code == 200 and response.json()["computed"] == ["2026-11"]
    assert future.status_code == 422
    assert programme.lines() == before


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["from", "to", "partnerId", "includeDownline", "kind", "period",
                             "limit", "cursor", "x"]),
       value=st.text(max_size=40))
def test_hostile_parameters_never_get_a_5xx(
    programme: Programme, ledger_api: AnalyticsServer, name: str, value: str,
) -> None:
    with ledger_api.admin() as admin:
        lines = admin.get("/api/commissions", params={name: value})
        segment = quote(value, safe="") or "x"
        plan = admin.get(f"/api/plans/{segment}", params={"at": value})
        statement = admin.get(f"/api/statements/{segment}/{segment}")
        period = admin.post(f"/api/periods/{segment}/close")
    for response in (lines, plan, statement, period):
        assert response.status_code < 500, response.text


def test_the_marketing_figures_carry_the_commissions_of_the_referrals(
    programme: Programme, ledger_api: AnalyticsServer,
) -> None:
    setup_month(programme, ledger_api)
    insert_clicks(programme.clickhouse, [click("sub", at=datetime(2026, 11, 1, tzinfo=UTC),
                                               ancestors=["master", "ib"])])
    november = {"from": "2026-11-01", "to": "2026-11-30"}
    with ledger_api.admin() as admin:
        downline = admin.get("/api/analytics/summary",
                             params={**november, "partnerId": "ib", "includeDownline": "1"})
        own_referrals = admin.get("/api/analytics/summary", params={**november, "partnerId": "ib"})
        series = admin.get("/api/analytics/timeseries", params=november).json()
        by_partner = admin.get("/api/analytics/breakdown", params={**november, "by": "partner"})
        by_campaign = admin.get("/api/analytics/breakdown", params={**november, "by": "campaign"})
    with ledger_api.partner("sub") as sub:
        as_sub = sub.get("/api/analytics/summary", params=november).json()
    # every level's lines on sub's referral: 343.33; the sub-IB's own referrals: none
    assert downline.json()["commissions"] == "343.33"
    assert own_referrals.json()["commissions"] == "0.00"
    assert sum(Decimal(point["commissions"]) for point in series["points"]) == Decimal("343.33")
    assert {row["key"]: row["commissions"] for row in by_partner.json()["rows"]
            if row["key"] == "sub"} == {"sub": "343.33"}
    assert [row["commissions"] for row in by_campaign.json()["rows"]] == ["343.33"]
    # a partner sees what its own subtree earns, not its uplines' overrides
    assert as_sub["commissions"] == "264.10"
