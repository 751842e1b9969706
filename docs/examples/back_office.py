"""What a broker's back office does with invite-edge, end to end (the README's example).

    .venv/bin/python docs/examples/back_office.py [BASE_URL] [DATA_DIR]

Against a running `invite run` (default http://127.0.0.1:8000 and ./var, where the tokens are):
an IB and its link, a person clicking it, the registration through the SSO hook, then that
trader's KYC, deposits, a trade and a reversal through POST /api/events; finally the IB's
summary and funnel, checked against the amounts worked out by hand. Exits 1 if they differ.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

BROWSER = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Safari/537.36")


def main() -> int:
    base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    data = Path(sys.argv[2] if len(sys.argv) > 2 else "var")
    admin, hook, events_token = ((data / name).read_text().strip()
                                 for name in ("admin_token", "hook_token", "events_token"))
    run = uuid.uuid4().hex[:6]
    ib, user_id = f"ib-{run}", int(time.time() * 1000) % 10**9
    with httpx.Client(base_url=base, timeout=10) as http:
        as_admin = {"Authorization": f"Bearer {admin}"}
        http.put(f"/api/partners/{ib}", json={"type": "ib", "name": "Example IB"},
                 headers=as_admin).raise_for_status()
        link = http.post(f"/api/partners/{ib}/links", json={"campaign": "example"},
                         headers=as_admin).json()
        # A person clicks: the registration page gets partnerId and clickId.
        landing = http.get(f"/r/{link['code']}", headers={"User-Agent": BROWSER})
        click_id = parse_qs(urlsplit(landing.headers["location"]).query)["clickId"][0]
        # The registration: the SSO hook credits the new cTrader ID user to the click's partner.
        referral = http.post("/hooks/sso/referral", headers={"Authorization": f"Bearer {hook}"},
                             json={"userId": user_id, "clickId": click_id, "partnerId": ib})
        referral.raise_for_status()
        now = int(time.time() * 1000)
        events = [
            {"eventId": f"{run}-kyc", "type": "kyc_approved", "ts": now - 5000, "userId": user_id},
            {"eventId": f"{run}-dep1", "type": "deposit", "ts": now - 4000, "userId": user_id,
             "amount": "250.00"},
            {"eventId": f"{run}-dep2", "type": "deposit", "ts": now - 3000, "userId": user_id,
             "amount": "99.99"},
            {"eventId": f"{run}-trade", "type": "trade", "ts": now - 2000, "userId": user_id,
             "symbol": "EURUSD", "lots": "1.5", "commission": "7.50", "markup": "3.00"},
            {"eventId": f"{run}-rev", "type": "reversal", "ts": now - 1000, "userId": user_id,
             "reverses": f"{run}-dep2"},
        ]
        posted = http.post("/api/events", json={"events": events},
                           headers={"Authorization": f"Bearer {events_token}"})
        posted.raise_for_status()
        print("posted:", posted.json())
        expected = {"registrations": 1, "kycApproved": 1, "firstDeposits": 1,
                    "firstDepositAmount": "250.00", "depositAmount": "250.00",
                    "activeTraders": 1, "lots": "1.5", "brokerRevenue": "10.50"}
        expected_steps = [("visitors", 1), ("registrations", 1), ("kyc", 1), ("ftd", 1),
                          ("active", 1)]
        deadline = time.monotonic() + 60
        while True:  # the batcher and the crediting take a few seconds; each figure comes then
            summary = http.get("/api/analytics/summary", headers=as_admin,
                               params={"partnerId": ib}).json()
            seen = {key: summary.get(key) for key in expected}
            funnel = http.get("/api/analytics/funnel", headers=as_admin,
                              params={"partnerId": ib, "cohort": "clicks"}).json()
            # Until the partner reaches the analytics, both answer 404 unknown_partner.
            steps = [(step["step"], step["count"]) for step in funnel.get("steps", [])]
            if (seen, steps) == (expected, expected_steps) or time.monotonic() > deadline:
                break
            time.sleep(1)
    print("summary:", seen)
    print("funnel:", steps)
    if (seen, steps) != (expected, expected_steps):
        print("differs from what was worked out by hand:", expected, expected_steps,
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
