"""A broker's month of commissions with invite-edge, end to end (the README's example).

    .venv/bin/python docs/examples/commissions.py [BASE_URL] [DATA_DIR]

Against a running `invite run` (default http://127.0.0.1:8000 and ./var, where the tokens are):
a plan with rebates, revenue share, a CPA, three levels and tiers; a master IB, its sub-IB and an
affiliate on that plan; two traders registered through the SSO hook; last month's deposits,
trades and a reversal through POST /api/events. Then every partner's statement, checked against
the amounts worked out by hand (below), the month closed, a late trade landing in this month as
an adjustment, and the month marked paid. Exits 1 if an amount differs.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

PLAN = {
    "name": "Standard IB",
    "cpa": {"amount": "250", "minFirstDeposit": "200", "minLots": "1", "withinDays": 30},
    "rebates": [{"symbols": ["EURUSD", "GBPUSD"], "perLot": "6"},
                {"symbols": ["XAU*"], "perLot": "10"}, {"symbols": ["*"], "perLot": "3"}],
    "revenueShare": "0.20",
    "levels": {"mode": "override", "shares": ["1", "0.2", "0.1"]},
    "tiers": [{"name": "Bronze", "multiplier": "1"},
              {"name": "Silver", "minActiveTraders": 20, "multiplier": "1.1"}],
}
# By hand. Trader A (under the affiliate): deposit 300, EURUSD 1.5 lots (commission 7.50,
# markup 3.00), XAUUSD 0.3 lots (commission 2.00), that XAUUSD trade reversed; trader B (the
# sub-IB's own): deposit 150, GBPUSD 2 lots (commission 10.00).
#   A's EURUSD: rebate 1.5 x 6 = 9.00, revenue share 0.20 x 10.50 = 2.10
#   A's XAUUSD: rebate 0.3 x 10 = 3.00, revenue share 0.20 x 2.00 = 0.40, then both reversed
#   A's CPA: 300 >= 200 and 1.5 lots >= 1 within 30 days: 250
#   B's GBPUSD: rebate 2 x 6 = 12.00, revenue share 2.00; B's 150 is below the CPA's 200
# Levels pay 1, 0.2 and 0.1 of each base up the chain; everyone is Bronze (x 1).
EXPECTED = {
    "affiliate": "261.10",  # 9.00 + 2.10 + 3.00 + 0.40 - 3.00 - 0.40 + 250
    "sub-ib": "66.22",  # 0.2 x (9.00 + 2.10 + 250) + 12.00 + 2.00
    "master": "28.91",  # 0.1 x (9.00 + 2.10 + 250) + 0.2 x (12.00 + 2.00)
}
LATE_ADJUSTMENT = "6.00"  # A's late EURUSD 1 lot, for the closed month: 1 x 6


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def main() -> int:
    base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    data = Path(sys.argv[2] if len(sys.argv) > 2 else "var")
    admin, hook, events_token = ((data / name).read_text().strip()
                                 for name in ("admin_token", "hook_token", "events_token"))
    run = uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = (this_month - timedelta(days=1)).replace(day=1)
    period = month.strftime("%Y-%m")
    ids = {name: f"{name}-{run}" for name in EXPECTED}
    users = {"A": int(time.time() * 1000) % 10**9, "B": int(time.time() * 1000) % 10**9 + 1}
    as_admin = {"Authorization": f"Bearer {admin}"}
    with httpx.Client(base_url=base, timeout=60, headers=as_admin) as http:
        periods = http.get("/api/periods").json()["periods"]
        if any(state["period"] == period for state in periods):
            print(f"{period} is closed already on this data dir: its lines are frozen, so run "
                  "this example on a fresh one (INVITE_DATA_DIR)", file=sys.stderr)
            return 2
        plan_id = f"std-{run}"
        http.put(f"/api/plans/{plan_id}", json={**PLAN, "effectiveFrom": ms(month)}
                 ).raise_for_status()
        http.put(f"/api/partners/{ids['master']}", json={"type": "ib", "planId": plan_id}
                 ).raise_for_status()
        http.put(f"/api/partners/{ids['sub-ib']}", json={"type": "ib", "parentPartnerId":
                                                         ids["master"]}).raise_for_status()
        http.put(f"/api/partners/{ids['affiliate']}", json={
            "type": "affiliate", "parentPartnerId": ids["sub-ib"]}).raise_for_status()
        for user, partner in (("A", "affiliate"), ("B", "sub-ib")):
            http.post("/hooks/sso/referral", headers={"Authorization": f"Bearer {hook}"},
                      json={"userId": users[user], "partnerId": ids[partner]}
                      ).raise_for_status()

        def event(name: str, kind: str, day: int, user: str, **fields: Any) -> dict[str, Any]:
            return {"eventId": f"{run}-{name}", "type": kind, "userId": users[user],
                    "ts": ms(month + timedelta(days=day)), **fields}

        events = [
            event("dep-a", "deposit", 2, "A", amount="300"),
            event("eur-a", "trade", 3, "A", symbol="EURUSD", lots="1.5", commission="7.50",
                  markup="3.00"),
            event("xau-a", "trade", 4, "A", symbol="XAUUSD", lots="0.3", commission="2.00",
                  markup="0"),
            event("dep-b", "deposit", 5, "B", amount="150"),
            event("gbp-b", "trade", 6, "B", symbol="GBPUSD", lots="2", commission="10",
                  markup="0"),
        ]
        # A reversal names an event accepted before: it comes in a later call.
        reversal = event("rev-a", "reversal", 9, "A", reverses=f"{run}-xau-a")
        for batch in (events, [reversal]):
            ok(http.post("/api/events", json={"events": batch},
                         headers={"Authorization": f"Bearer {events_token}"}))
        totals = wait_for_totals(http, period, ids, EXPECTED)
        print(f"{period} statements:", totals)
        if totals != EXPECTED:
            print("differs from what was worked out by hand:", EXPECTED, file=sys.stderr)
            return 1
        statement = http.get(f"/api/statements/{ids['affiliate']}/{period}").json()
        print("affiliate's statement by kind:", statement["totals"]["byKind"])
        pdf = http.get(f"/api/statements/{ids['affiliate']}/{period}.pdf")
        (data / f"statement-{period}.pdf").write_bytes(pdf.content)
        closed = http.post(f"/api/periods/{period}/close")
        closed.raise_for_status()
        print("closed:", closed.json())
        # A trade of that month arrives late: it lands in this month as an adjustment.
        late = event("late-a", "trade", 20, "A", symbol="EURUSD", lots="1", commission="0",
                     markup="0")
        ok(http.post("/api/events", json={"events": [late]},
                     headers={"Authorization": f"Bearer {events_token}"}))
        adjusted = wait_for_adjustment(http, this_month.strftime("%Y-%m"), ids["affiliate"])
        print("adjustment this month:", adjusted)
        paid = http.post(f"/api/periods/{period}/paid", json={"reference": f"PAYOUT-{run}"})
        paid.raise_for_status()
        print("paid:", paid.json())
    if adjusted != LATE_ADJUSTMENT:
        print(f"the adjustment differs from {LATE_ADJUSTMENT}", file=sys.stderr)
        return 1
    return 0


def ok(response: httpx.Response) -> httpx.Response:
    """The response, or exit saying what the API refused."""
    if response.status_code >= 400:
        sys.exit(f"{response.request.method} {response.request.url.path}: "
                 f"{response.status_code} {response.text[:500]}")
    return response


def wait_for_totals(http: httpx.Client, period: str, ids: dict[str, str],
                    expected: dict[str, str]) -> dict[str, str]:
    """Each partner's statement total, once the ledger has caught up (a few seconds)."""
    deadline = time.monotonic() + 120
    while True:
        totals = {}
        for name, partner in ids.items():  # a partner is known to analytics within seconds
            answer = http.get(f"/api/statements/{partner}/{period}")
            totals[name] = answer.json()["totals"]["amount"] if answer.status_code == 200 else ""
        if totals == expected or time.monotonic() > deadline:
            return totals
        time.sleep(1)


def wait_for_adjustment(http: httpx.Client, period: str, partner: str) -> str:
    deadline = time.monotonic() + 120
    while True:
        adjustments = http.get(f"/api/statements/{partner}/{period}").json()["adjustments"]
        if adjustments["lines"] or time.monotonic() > deadline:
            return str(adjustments["amount"])
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
