"""`python -m tests.analytics.portal.screenshots`: the partner portal's screenshots
(docs/screenshots/portal-desktop.png and portal-phone.png) on a realistic programme.

The programme is the dashboard demo's (loadtests/dashboard_demo.py: `invite run` fed through the
real APIs with an IB tree, links, two months of clicks, registrations, KYC, deposits and trades)
with a commission plan on its roots from the start, so that the ledger in `invite run`'s batcher
computes every level's lines. Then the admin issues a portal link for Apex Capital IB, Chromium
opens it, presses "Sign in" and takes the overview at desktop and phone sizes (and, with
--all-pages, every page, for a look).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from loadtests.dashboard_demo import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP_UA,
    LINKS,
    PHONE_UA,
    SCREENSHOTS,
    TREE,
    Demo,
    _interrupt,
)
from loadtests.processes import wait_until

PARTNER = "apex-ib"
PLAN = {
    "name": "Standard IB",
    "cpa": {"amount": "150", "minFirstDeposit": "250", "minLots": "0.5", "withinDays": 30},
    "rebates": [{"symbols": ["EURUSD", "GBPUSD"], "perLot": "6"},
                {"symbols": ["XAU*"], "perLot": "10"}, {"symbols": ["*"], "perLot": "3"}],
    "revenueShare": "0.20",
    "levels": {"mode": "override", "shares": ["1", "0.2", "0.1"]},
    "tiers": [{"name": "Bronze", "multiplier": "1"},
              {"name": "Silver", "minActiveTraders": 5, "multiplier": "1.1"}],
}
PAGES = ("/portal", "/portal/links", "/portal/downline", "/portal/commissions")


class PortalDemo(Demo):
    def build_tree(self) -> None:
        """The demo's tree and links, the roots on a plan in force from before the history."""
        admin = {"Authorization": f"Bearer {self.admin}"}
        start = datetime.now(UTC) - timedelta(days=self.days + 30)
        self.http.put("/api/plans/standard", headers=admin, json={
            **PLAN, "effectiveFrom": start.strftime("%Y-%m-%dT00:00:00Z")}).raise_for_status()
        for partner_id, parent, name, kind in TREE:
            body: dict[str, Any] = {"name": name, "type": kind}
            if parent:
                body["parentPartnerId"] = parent
            else:
                body["planId"] = "standard"
            answer = self.http.put(f"/api/partners/{partner_id}", json=body, headers=admin)
            answer.raise_for_status()
            self.ancestors[partner_id] = answer.json()["ancestors"]
        for partner_id, campaign, sub_id, weight in LINKS:
            body = {k: v for k, v in (("campaign", campaign), ("subId", sub_id)) if v}
            answer = self.http.post(f"/api/partners/{partner_id}/links", json=body, headers=admin)
            answer.raise_for_status()
            self.links.append({**answer.json(), "subId": sub_id, "weight": weight})

    def ledger_settled(self) -> None:
        """Until the ledger's lines for the tree stop changing between two looks."""
        admin = {"Authorization": f"Bearer {self.admin}"}
        seen: list[int] = []

        def steady() -> bool:
            body = self.http.get("/api/commissions", headers=admin, params={
                "partnerId": PARTNER, "includeDownline": "true", "limit": "1"}).json()
            seen.append(int(body["totals"]["lines"]))
            return len(seen) >= 3 and seen[-1] > 0 and seen[-1] == seen[-2] == seen[-3]

        wait_until(steady, 240, "the ledger's lines", self.server, interval_s=5.0)

    def portal_screenshots(self, directory: Path, all_pages: bool) -> list[Path]:
        from playwright.sync_api import sync_playwright

        admin = {"Authorization": f"Bearer {self.admin}"}
        directory.mkdir(parents=True, exist_ok=True)
        taken = []
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, size, agent in (("desktop", (1280, 800), DESKTOP_UA),
                                      ("phone", (390, 844), PHONE_UA)):
                url = self.http.post(f"/api/partners/{PARTNER}/portal-link",
                                     headers=admin).json()["url"]
                context = browser.new_context(user_agent=agent, device_scale_factor=1,
                                              viewport={"width": size[0], "height": size[1]})
                page = context.new_page()
                errors: list[str] = []
                page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error"
                        else None)
                page.goto(url)
                page.click("#signin")
                page.wait_for_selector("#chart .main-svg")
                path = directory / f"portal-{name}.png"
                page.screenshot(path=str(path), full_page=True)
                taken.append(path)
                for extra in PAGES[1:] if all_pages else ():
                    page.goto(f"{self.url}{extra}")
                    shot = directory / f"portal-{name}-{extra.rsplit('/', 1)[1]}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    taken.append(shot)
                if errors:
                    raise RuntimeError(f"console errors on the {name} pages: {errors}")
                context.close()
            browser.close()
        return taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portal-screenshots",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=SCREENSHOTS, help="where the PNGs go")
    parser.add_argument("--all-pages", action="store_true",
                        help="also every other page, as portal-SIZE-PAGE.png")
    parser.add_argument("--keep", action="store_true",
                        help="leave it running until Ctrl-C (prints a fresh sign-in link)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory(prefix="portal-demo-") as work:
        demo = PortalDemo(Path(work), args.days, args.seed)
        try:
            demo.start()
            demo.build_tree()
            demo.history()
            demo.today()
            demo.funnel_events()
            demo.settle()
            demo.ledger_settled()
            for path in demo.portal_screenshots(args.out, args.all_pages):
                print(path)
            if args.keep:
                link = demo.http.post(f"/api/partners/{PARTNER}/portal-link", headers={
                    "Authorization": f"Bearer {demo.admin}"}).json()["url"]
                print(f"sign in: {link}  admin token: {demo.admin}", flush=True)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            return 130
        finally:
            demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
