"""The portal's commissions: a partner's own lines of a month, totals by kind and level, its
statements as JSON, CSV and PDF; never another partner's lines or statements."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from tests.analytics.commissions.conftest import Programme, ms
from tests.analytics.commissions.test_api import PLAN
from tests.analytics.commissions.test_rules import deposit, trade
from tests.analytics.portal.conftest import ANCESTORS, TREE, Portal
from tests.analytics.test_api import AnalyticsServer

pytestmark = pytest.mark.servers
MONTH = "2026-11"


@pytest.fixture
def earning(portal_server: AnalyticsServer, programme: Programme) -> Portal:
    """The tree on the standard plan (3 levels: 1, 0.2, 0.1); in November user 7 (of signals)
    deposits 300 and trades 1.5 lots of EURUSD, user 8 (of rival) 2 lots of GBPUSD."""
    programme.plan("std", effective_from=ms("2026-09-01T00:00:00"),
                   **{k: v for k, v in PLAN.items() if k != "effectiveFrom"})
    for partner_id, parent, name, kind in TREE:
        fields: dict[str, Any] = {"name": name, "type": kind}
        if parent:
            fields["parent_id"] = parent
        if parent is None:
            fields["plan_id"] = "std"
        programme.partner(partner_id, **fields)
    programme.register(7, "signals", ms("2026-11-01T00:00:00"), ancestors=ANCESTORS["signals"])
    programme.register(8, "rival", ms("2026-11-01T00:00:00"), ancestors=[])
    programme.post(deposit("d7", "2026-11-02T00:00:00", "300"),
                   trade("t7", "2026-11-03T00:00:00", "EURUSD", "1.5", "7.50", "3.00"),
                   deposit("d8", "2026-11-02T00:00:00", "500", user=8),
                   trade("t8", "2026-11-03T00:00:00", "GBPUSD", "2", "10.00", user=8))
    programme.compute()
    return Portal(portal_server, programme)


def test_a_partner_sees_its_own_lines_of_a_month_and_their_totals(earning: Portal) -> None:
    with earning.signed_in("apex") as http:
        answer = http.get("/portal/commissions", params={"month": MONTH})

    page = answer.text
    own = earning.programme.lines(partner_id="apex", period=MONTH)
    assert answer.status_code == 200 and own
    assert sorted(re.findall(r'<tr data-line="([^"]+)"', page)) == sorted(
        line["line_id"] for line in own)
    total = sum(line["amount"] for line in own)
    shown = re.search(r'id="month-total">([^<]*)<', page)
    assert shown is not None and shown.group(1).strip() == f"{total:,.2f}"
    assert "rival" not in page  # nothing of the rival IB, whose trader is user 8
    assert '<td data-label="Trader">8</td>' not in page and '<td data-label="Trader">7</td>' in page
    assert 'data-period="2026-11"' in page


def test_a_partner_downloads_its_statements_as_json_csv_and_pdf(earning: Portal) -> None:
    with earning.signed_in("signals") as http:
        as_json = http.get(f"/portal/statements/{MONTH}.json")
        as_csv = http.get(f"/portal/statements/{MONTH}.csv")
        as_pdf = http.get(f"/portal/statements/{MONTH}.pdf")

    body = as_json.json()
    own = earning.programme.lines(partner_id="signals", period=MONTH)
    assert (body["partnerId"], body["period"], body["totals"]["lines"]) == (
        "signals", MONTH, len(own))
    assert {line["partnerId"] for line in body["lines"]} == {"signals"}
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {row["partnerId"] for row in rows} == {"signals"} and len(rows) == len(own)
    assert as_pdf.content.startswith(b"%PDF") and "attachment" in as_pdf.headers[
        "content-disposition"]


# One data set for all of them: building a month of the ledger takes seconds.
OTHER_PATHS = ("2026-10.json",  # a month without lines
               "2026-13.json", "2026-11", "2026-11.xml", "2026-11.json.json", "..%2Frival.json",
               "rival", "%00.pdf", "２０２６-11.json")
MALFORMED_MONTHS = ("2026-1", "1999-12", "abcd-ef", "2026-11-01", "٢٠٢٦-١١")


def test_any_other_statement_path_is_a_404(earning: Portal) -> None:
    with earning.signed_in("apex") as http:
        answers = {name: http.get(f"/portal/statements/{name}").status_code
                   for name in OTHER_PATHS}

    assert answers == dict.fromkeys(OTHER_PATHS, 404)


def test_no_url_reaches_another_partner_s_statement(earning: Portal) -> None:
    with earning.signed_in("apex") as http:
        answers = [http.get(path) for path in (
            f"/portal/statements/rival/{MONTH}.json",
            f"/portal/statements/{MONTH}.json?partner=rival",
            f"/portal/commissions?month={MONTH}&partnerId=rival",
        )]

    assert answers[0].status_code == 404
    assert answers[1].json()["partnerId"] == "apex"
    assert "rival" not in answers[2].text
    assert all("Rival" not in answer.text for answer in answers)


def test_the_overview_shows_what_the_partner_earned(earning: Portal) -> None:
    own = earning.programme.lines(partner_id="apex-desk", period=MONTH)
    with earning.signed_in("apex-desk") as http:
        page = http.get("/portal", params={"range": "last-month"}).text

    earned = re.search(r'id="earned">([^<]*)<', page).group(1)  # type: ignore[union-attr]
    assert earned.strip() == f"{sum(line['amount'] for line in own):,.2f}"


def test_a_malformed_month_is_a_page_saying_how_to_write_it(earning: Portal) -> None:
    with earning.signed_in("apex") as http:
        answers = [http.get("/portal/commissions", params={"month": month})
                   for month in MALFORMED_MONTHS]

    assert [answer.status_code for answer in answers] == [422] * len(MALFORMED_MONTHS)
    assert all("YYYY-MM" in answer.text for answer in answers)
