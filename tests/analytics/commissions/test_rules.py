"""Each commission rule, with amounts worked out by hand, through the real pipeline: the registry,
the events intake and batcher, crediting, and the ledger's pass."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from edge.clock import now_ms
from tests.analytics.commissions.conftest import Programme, ms

pytestmark = pytest.mark.servers

D = Decimal
STANDARD: dict[str, Any] = {
    "name": "Standard IB",
    "rebates": [{"symbols": ["EURUSD", "GBPUSD"], "perLot": "6"},
                {"symbols": ["XAU*"], "perLot": "10"}, {"symbols": ["*"], "perLot": "3"}],
    "revenueShare": "0.20",
    "levels": {"mode": "override", "shares": ["1", "0.2", "0.1"]},
}


def trade(event_id: str, when: str, symbol: str, lots: str, commission: str = "0",
          markup: str = "0", user: int = 7) -> dict[str, Any]:
    return {"eventId": event_id, "type": "trade", "ts": ms(when), "userId": user,
            "symbol": symbol, "lots": lots, "commission": commission, "markup": markup}


def deposit(event_id: str, when: str, amount: str, user: int = 7) -> dict[str, Any]:
    return {"eventId": event_id, "type": "deposit", "ts": ms(when), "userId": user,
            "amount": amount}


def reversal(event_id: str, when: str, reverses: str, user: int = 7) -> dict[str, Any]:
    return {"eventId": event_id, "type": "reversal", "ts": ms(when), "userId": user,
            "reverses": reverses}


def tree(programme: Programme, plan: dict[str, Any] | None = None) -> None:
    """master (plan std) > ib > sub; user 7 registered with sub on 1 Nov 2026."""
    programme.plan("std", **(plan or STANDARD))
    programme.partner("master", plan_id="std")
    programme.partner("ib", parent_id="master")
    programme.partner("sub", parent_id="ib")
    programme.register(7, "sub", ms("2026-11-01T00:00:00"), ancestors=["master", "ib"])


def test_a_rebate_comes_from_the_first_rule_whose_glob_matches(programme: Programme) -> None:
    tree(programme, {**STANDARD, "revenueShare": "0", "levels": {"shares": ["1"]}})
    programme.post(trade("t1", "2026-11-02T10:00:00", "EURUSD", "1.5"),
                   trade("t2", "2026-11-02T11:00:00", "XAUUSD", "0.3"),
                   trade("t3", "2026-11-02T12:00:00", "BTCUSD", "2"),
                   trade("t4", "2026-11-02T13:00:00", "gbpusd", "0.01"))
    programme.compute()
    assert [(line["event_id"], line["amount"]) for line in programme.lines()] == [
        ("t1", D("9.00")), ("t2", D("3.00")), ("t3", D("6.00")), ("t4", D("0.06"))]


def test_override_levels_pay_each_ancestor_its_share_of_the_base(programme: Programme) -> None:
    tree(programme)
    programme.post(trade("t1", "2026-11-03T09:00:00", "EURUSD", "1.5", "7.50", "3.00"))
    programme.compute()
    # rebate 1.5 x 6 = 9.00; revenue share 0.20 x (7.50 + 3.00) = 2.10
    assert programme.amounts() == [
        ("rebate", "sub", 1, D("9.00")), ("rebate", "ib", 2, D("1.80")),
        ("rebate", "master", 3, D("0.90")),
        ("revenue_share", "sub", 1, D("2.10")), ("revenue_share", "ib", 2, D("0.42")),
        ("revenue_share", "master", 3, D("0.21")),
    ]


def test_split_levels_share_one_pool_and_levels_past_the_chain_earn_nothing(
    programme: Programme,
) -> None:
    tree(programme, {"rebates": [{"symbols": ["*"], "perLot": "10"}],
                     "levels": {"mode": "split", "shares": ["0.6", "0.25", "0.1", "0.05"]}})
    programme.post(trade("t1", "2026-11-03T09:00:00", "EURUSD", "2"))
    programme.compute()
    # a pool of 2 x 10 = 20.00: 12.00, 5.00, 2.00; a fourth level does not exist
    assert programme.amounts() == [
        ("rebate", "sub", 1, D("12.00")), ("rebate", "ib", 2, D("5.00")),
        ("rebate", "master", 3, D("2.00")),
    ]


def test_each_line_is_rounded_half_even_to_cents(programme: Programme) -> None:
    tree(programme, {"revenueShare": "0.2", "levels": {"shares": ["1", "0.5"]}})
    programme.post(trade("t1", "2026-11-03T09:00:00", "EURUSD", "1", "0.125"),
                   trade("t2", "2026-11-03T10:00:00", "EURUSD", "1", "0.175"),
                   trade("t3", "2026-11-03T11:00:00", "EURUSD", "1", "0.3333"))
    programme.compute()
    # 0.025 -> 0.02 and half of it 0.0125 -> 0.01; 0.035 -> 0.04, 0.0175 -> 0.02;
    # 0.06666 -> 0.07, 0.03333 -> 0.03
    assert [line["amount"] for line in programme.lines()] == [
        D("0.02"), D("0.01"), D("0.04"), D("0.02"), D("0.07"), D("0.03")]
    assert programme.lines(event_id="t1", level=1)[0]["base"] == D("0.025")


def test_a_cpa_is_paid_once_when_the_deposit_and_the_lots_both_hold(
    programme: Programme,
) -> None:
    tree(programme, {"cpa": {"amount": "250", "minFirstDeposit": "200", "minLots": "1",
                             "withinDays": 30},
                     "levels": {"shares": ["1", "0.2"]}})
    programme.post(deposit("d1", "2026-11-02T00:00:00", "300"),
                   trade("t1", "2026-11-03T00:00:00", "EURUSD", "0.6"),
                   trade("t2", "2026-11-04T00:00:00", "EURUSD", "0.4"),
                   trade("t3", "2026-11-05T00:00:00", "EURUSD", "5"))
    programme.compute()
    assert programme.amounts(kind="cpa") == [("cpa", "sub", 1, D("250.00")),
                                             ("cpa", "ib", 2, D("50.00"))]
    assert {line["event_id"] for line in programme.lines(kind="cpa")} == {"t2"}


def test_no_cpa_for_a_small_first_deposit_or_lots_outside_the_window(
    programme: Programme,
) -> None:
    tree(programme, {"cpa": {"amount": "100", "minFirstDeposit": "200", "minLots": "1",
                             "withinDays": 10}})
    programme.register(8, "sub", ms("2026-11-01T00:00:00"), ancestors=["master", "ib"])
    programme.post(deposit("d7", "2026-11-02T00:00:00", "199.99"),
                   trade("t7", "2026-11-03T00:00:00", "EURUSD", "3"),
                   deposit("d8", "2026-11-02T00:00:00", "500", user=8),
                   trade("t8", "2026-11-12T00:00:00", "EURUSD", "3", user=8))
    programme.compute()
    assert programme.lines(kind="cpa") == []


def test_a_cpa_reached_before_the_deposit_is_paid_at_the_deposit(programme: Programme) -> None:
    tree(programme, {"cpa": {"amount": "100", "minFirstDeposit": "50", "minLots": "1"}})
    programme.post(trade("t1", "2026-11-03T00:00:00", "EURUSD", "2"),
                   deposit("d1", "2026-11-20T00:00:00", "50"))
    programme.compute()
    assert [(line["event_id"], line["amount"]) for line in programme.lines(kind="cpa")] == [
        ("d1", D("100.00"))]


def test_a_tier_from_last_months_downline_scales_what_a_partner_earns(
    programme: Programme,
) -> None:
    tree(programme, {"rebates": [{"symbols": ["*"], "perLot": "10"}],
                     "levels": {"shares": ["1", "0.5"]},
                     "tiers": [{"name": "Bronze", "multiplier": "1"},
                               {"name": "Silver", "minActiveTraders": 2, "multiplier": "1.1"},
                               {"name": "Gold", "minLots": "100", "multiplier": "1.25"}]})
    programme.register(8, "ib", ms("2026-10-01T00:00:00"), ancestors=["master"])
    programme.register(7, "sub", ms("2026-10-01T00:00:00"), ancestors=["master", "ib"])
    # October: ib's downline has two active traders (7 under sub, 8 its own); sub's only one.
    programme.post(trade("o7", "2026-10-10T00:00:00", "EURUSD", "1"),
                   trade("o8", "2026-10-11T00:00:00", "EURUSD", "1", user=8),
                   trade("n7", "2026-11-10T00:00:00", "EURUSD", "1"))
    programme.compute()
    november = programme.lines(event_id="n7")
    assert [(line["partner_id"], line["tier"], line["multiplier"], line["amount"])
            for line in november] == [("sub", "Bronze", D(1), D("10.00")),
                                      ("ib", "Silver", D("1.1"), D("5.50"))]


def test_a_partners_own_user_and_a_suspended_partner_earn_zero_lines(
    programme: Programme,
) -> None:
    tree(programme, {"rebates": [{"symbols": ["*"], "perLot": "10"}],
                     "levels": {"shares": ["1", "0.5", "0.25"]}})
    programme.partner("ib", ctid_user_id=7)
    programme.post(trade("t1", "2026-11-03T00:00:00", "EURUSD", "1"))
    programme.compute()
    programme.partner("master", status="suspended")
    just_now = {**trade("t2", "2026-11-04T00:00:00", "EURUSD", "1"), "ts": now_ms()}
    programme.post(just_now)
    programme.compute()
    assert [(line["event_id"], line["partner_id"], line["amount"], line["excluded"])
            for line in programme.lines()] == [
        ("t1", "sub", D("10.00"), ""), ("t1", "ib", D("0.00"), "self_referral"),
        ("t1", "master", D("2.50"), ""),  # suspended after t1: t1 stays earned
        ("t2", "sub", D("10.00"), ""), ("t2", "ib", D("0.00"), "self_referral"),
        ("t2", "master", D("0.00"), "suspended"),
    ]


def test_a_reversal_pays_back_the_reversed_trades_lines(programme: Programme) -> None:
    tree(programme, {"rebates": [{"symbols": ["*"], "perLot": "4"}],
                     "levels": {"shares": ["1", "0.25"]}})
    programme.post(trade("t1", "2026-11-03T00:00:00", "EURUSD", "2.5"))
    programme.compute()
    programme.post(reversal("r1", "2026-11-05T00:00:00", "t1"))
    programme.compute()
    assert [(line["kind"], line["event_id"], line["partner_id"], line["amount"],
             line["reverses"]) for line in programme.lines()] == [
        ("rebate", "t1", "sub", D("10.00"), ""), ("rebate", "t1", "ib", D("2.50"), ""),
        ("reversal", "r1", "sub", D("-10.00"), "t1"), ("reversal", "r1", "ib", D("-2.50"), "t1"),
    ]


def test_an_event_follows_the_plan_version_in_force_at_its_time(programme: Programme) -> None:
    tree(programme, {"rebates": [{"symbols": ["*"], "perLot": "5"}]})
    programme.plan("std", effective_from=ms("2026-11-15T00:00:00"),
                   rebates=[{"symbols": ["*"], "perLot": "8"}])
    programme.post(trade("t1", "2026-11-14T23:59:59", "EURUSD", "1"),
                   trade("t2", "2026-11-15T00:00:00", "EURUSD", "1"))
    programme.compute()
    assert [(line["event_id"], line["plan_version"], line["amount"])
            for line in programme.lines()] == [("t1", 1, D("5.00")), ("t2", 2, D("8.00"))]
