"""The ledger's pass on the two ways it takes a change: event by event (the lines of the events
whose credited rows changed), and, when very many rows changed at once, the open months computed
again whole with the closed months still adjusted event by event. Both must give the same lines,
worked out by hand, through the real pipeline."""

from __future__ import annotations

from decimal import Decimal

import pytest

from analytics.commissions import worker
from tests.analytics.commissions.conftest import Programme, ms
from tests.analytics.commissions.test_rules import reversal, trade

pytestmark = pytest.mark.servers

D = Decimal


def lines(programme: Programme, period: str) -> list[tuple[str, str, str, Decimal, bool]]:
    return [(line["kind"], line["event_id"], line["partner_id"], line["amount"],
             line["adjusts"] != "") for line in programme.lines(period=period)]


@pytest.mark.parametrize("many", [False, True], ids=["event by event", "months whole"])
def test_a_late_trade_moved_to_another_partner_moves_its_adjustment(
    programme: Programme, monkeypatch: pytest.MonkeyPatch, many: bool,
) -> None:
    if many:
        monkeypatch.setattr(worker, "MANY_CHANGES", 0)
    programme.plan("flat", rebates=[{"symbols": ["*"], "perLot": "10"}],
                   levels={"shares": ["1"]})
    programme.partner("alpha", plan_id="flat")
    programme.partner("beta", plan_id="flat")
    programme.register(7, "alpha", ms("2026-11-01T00:00:00"))
    programme.post(trade("t1", "2026-11-02T00:00:00", "EURUSD", "1"),
                   trade("t2", "2026-12-02T00:00:00", "EURUSD", "0.5"))
    report = programme.compute()
    assert lines(programme, "2026-11") == [("rebate", "t1", "alpha", D("10.00"), False)]
    assert lines(programme, "2026-12") == [("rebate", "t2", "alpha", D("5.00"), False)]
    programme.close("2026-11")

    # A trade of November arrives after it closed: 2 lots x 10 for alpha, in December.
    programme.post(trade("t3", "2026-11-20T00:00:00", "EURUSD", "2"))
    report = programme.compute()
    assert ("2026-12" in report.months) is many
    assert lines(programme, "2026-12") == [
        ("rebate", "t3", "alpha", D("20.00"), True),
        ("rebate", "t2", "alpha", D("5.00"), False),
    ]

    # The user was reattributed to beta from 15 November: t3 (and t2) are beta's now. The
    # adjustment of alpha's line (never booked in November) goes, beta's comes; t1 stays
    # alpha's, frozen in November.
    programme.register(7, "beta", ms("2026-11-15T00:00:00"), event_type="reattribution")
    programme.compute()
    assert lines(programme, "2026-11") == [("rebate", "t1", "alpha", D("10.00"), False)]
    assert lines(programme, "2026-12") == [
        ("rebate", "t3", "beta", D("20.00"), True),
        ("rebate", "t2", "beta", D("5.00"), False),
    ]

    # t3 reversed in December: its line stays (adjusted into December), the reversal's is
    # negative; posting everything again changes nothing.
    programme.post(reversal("r3", "2026-12-03T00:00:00", "t3"))
    programme.compute()
    expected = [
        ("rebate", "t3", "beta", D("20.00"), True),
        ("rebate", "t2", "beta", D("5.00"), False),
        ("reversal", "r3", "beta", D("-20.00"), False),
    ]
    assert lines(programme, "2026-12") == expected
    programme.post(trade("t3", "2026-11-20T00:00:00", "EURUSD", "2"),
                   reversal("r3", "2026-12-03T00:00:00", "t3"))
    programme.compute()
    assert lines(programme, "2026-12") == expected
