"""`python -m loadtests.dashboard_demo`: a month of a small programme, then the dashboard's
screenshots (docs/screenshots/dashboard-desktop.png and dashboard-phone.png).

It starts `invite run` (its own data dir, redis-server and a fake cTrader on loopback) and feeds it
through the real APIs: an IB tree and links (`PUT /api/partners`, `POST …/links`), today's clicks
through `GET /r/{code}` (people and bots, several countries and referrers), registrations through
`POST /hooks/sso/referral`, KYC, deposits and trades through `POST /api/events`. The 29 days
before today are written into the click and conversion streams the way the edge and the SSO hook
write them (a redirect cannot be dated back). Then headless Chromium opens the dashboard with the
admin token, opens the first IB of the tree, and takes both screenshots.
"""

from __future__ import annotations

import argparse
import random
import secrets
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from edge.cli.embedded_redis import free_port
from edge.streams import CLICK_STREAM, CONVERSION_STREAM
from loadtests.processes import BenchRedis, Children, wait_http_ok, wait_until

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/156.0.0.0 Safari/537.36")
PHONE_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/156.0.0.0 Mobile Safari/537.36")
BOT_UA = "TelegramBot (like TwitterBot)"
# partner id, parent, name, type
TREE = [
    ("apex-ib", None, "Apex Capital IB", "ib"),
    ("nordic-ib", None, "Nordic Traders", "ib"),
    ("apex-dubai", "apex-ib", "Apex Dubai desk", "ib"),
    ("apex-lagos", "apex-ib", "Apex Lagos desk", "ib"),
    ("fx-signals", "apex-dubai", "FX Signals channel", "affiliate"),
    ("gold-club", "apex-dubai", "Gold Club", "affiliate"),
    ("naija-pips", "apex-lagos", "Naija Pips", "affiliate"),
    ("oslo-fx", "nordic-ib", "Oslo FX blog", "affiliate"),
    ("solo-trader", None, "Solo Trader", "individual"),
]
# partner id, campaign, sub-ID, weight of its clicks
LINKS = [
    ("fx-signals", "spring", "tg-channel", 9), ("fx-signals", "spring", "tg-ads", 4),
    ("gold-club", "gold", "", 6), ("naija-pips", "spring", "ig-bio", 5),
    ("apex-dubai", "", "", 3), ("oslo-fx", "blog", "post-12", 3), ("nordic-ib", "", "", 1),
    ("solo-trader", "", "", 1), ("apex-ib", "brand", "", 2),
]
COUNTRIES = ["AE", "AE", "NG", "NG", "DE", "GB", "ZA", "IN", "NO", "SA"]
REFERRERS = ["https://t.me/", "https://t.me/", "https://www.instagram.com/", "https://www.google.com/",
             "https://x.com/", ""]
UAS = [DESKTOP_UA, PHONE_UA, PHONE_UA,
       "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
       "Gecko) Version/17.5 Mobile/15E148 Safari/604.1"]


class Demo:
    def __init__(self, work: Path, days: int, seed: int) -> None:
        self.work = work
        self.days = days
        self.random = random.Random(seed)
        self.children = Children(work)
        self.admin = secrets.token_urlsafe(24)
        self.hook = secrets.token_urlsafe(24)
        self.events = secrets.token_urlsafe(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.links: list[dict[str, Any]] = []
        self.ancestors: dict[str, list[str]] = {}
        self.next_user = 100_000

    def start(self) -> None:
        self.redis = BenchRedis(self.children, self.work / "redis")
        self.redis.start()
        fake_port = free_port()
        fake = self.children.spawn("fake-ctrader", [
            sys.executable, "-m", "tests.fake_ctrader", "--port", str(fake_port)])
        wait_until(lambda: _answers(f"http://127.0.0.1:{fake_port}/_fake/stats"), 20,
                   "the fake cTrader", fake)
        env = {
            "PATH": "/usr/bin:/bin", "INVITE_DATA_DIR": str(self.work / "data"),
            "INVITE_REDIS_URL": f"redis://127.0.0.1:{self.redis.port}/0",
            "INVITE_ADMIN_TOKEN": self.admin, "INVITE_HOOK_TOKEN": self.hook,
            "INVITE_EVENTS_TOKEN": self.events, "INVITE_COOKIE_SECURE": "0",
            "INVITE_COUNTRY_HEADER": "x-country", "INVITE_PARTNERS_SYNC_S": "2",
            "INVITE_CTRADER_URL": f"http://127.0.0.1:{fake_port}", "INVITE_CTRADER_TOKEN": "demo",
            "INVITE_BROKER_CRM_NAME": "demo-broker",
            "INVITE_REGISTRATION_URL": "https://register.broker.test/signup",
        }
        self.server = self.children.spawn("invite", [
            str(Path(sys.executable).parent / "invite"), "run", "--port", str(self.port)], env=env)
        wait_http_ok(f"{self.url}/healthz", self.server, timeout_s=60)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def build_tree(self) -> None:
        admin = {"Authorization": f"Bearer {self.admin}"}
        for partner_id, parent, name, kind in TREE:
            body: dict[str, Any] = {"name": name, "type": kind}
            if parent:
                body["parentPartnerId"] = parent
            answer = self.http.put(f"/api/partners/{partner_id}", json=body, headers=admin)
            answer.raise_for_status()
            self.ancestors[partner_id] = answer.json()["ancestors"]
        for partner_id, campaign, sub_id, weight in LINKS:
            body = {k: v for k, v in (("campaign", campaign), ("subId", sub_id)) if v}
            answer = self.http.post(f"/api/partners/{partner_id}/links", json=body, headers=admin)
            answer.raise_for_status()
            self.links.append({**answer.json(), "subId": sub_id, "weight": weight})

    def history(self) -> None:
        """The days before today, as the edge and the SSO hook write their streams."""
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        clicks: list[bytes] = []
        conversions: list[bytes] = []
        for back in range(self.days - 1, 0, -1):
            day = today - timedelta(days=back)
            trend = 1 + (self.days - back) / self.days  # a programme that grows
            weekend = 0.7 if day.weekday() >= 5 else 1.0
            for link in self.links:
                many = link["weight"] * 6 * trend * weekend * self.random.uniform(.6, 1.4)
                for _ in range(int(many)):
                    at = day + timedelta(seconds=self.random.randrange(86_400))
                    click = self.click_entry(link, at, human=self.random.random() < 0.85)
                    clicks.append(orjson.dumps(click))
                    if click["kind"] == "person" and self.random.random() < 0.06:
                        conversions.append(orjson.dumps(self.registration(link, click, at)))
        with self.redis.client.pipeline(transaction=False) as pipe:
            for entry in clicks:
                pipe.xadd(CLICK_STREAM, {"e": entry})
            for entry in conversions:
                pipe.xadd(CONVERSION_STREAM, {"e": entry})
            pipe.execute()
        self.history_users = [orjson.loads(entry) for entry in conversions]

    def click_entry(self, link: dict[str, Any], at: datetime, human: bool) -> dict[str, Any]:
        ms = int(at.timestamp() * 1000)
        click_id = str(_uuid7(ms, self.random))
        return {
            "click_id": click_id, "ts": ms, "code": link["code"],
            "kind": "person" if human else "preview", "outcome": "credited",
            "partner_id": link["partnerId"], "ancestors": self.ancestors[link["partnerId"]],
            "campaign": link.get("campaign") or "", "sub_id": link["subId"],
            "destination": link["destination"] or "", "ip_hash": secrets.token_hex(16),
            "ip_prefix": "203.0.113.0/24",
            "user_agent": self.random.choice(UAS) if human else BOT_UA,
            "referer": self.random.choice(REFERRERS), "accept_language": "en-GB,en;q=0.9",
            "country": self.random.choice(COUNTRIES) if human else "", "first_click": True,
            "visitor_id": click_id, "method": "GET",
        }

    def registration(
        self, link: dict[str, Any], click: dict[str, Any], at: datetime
    ) -> dict[str, Any]:
        self.next_user += 1
        ts = int((at + timedelta(minutes=self.random.randrange(5, 300))).timestamp() * 1000)
        return {
            "event_id": f"registration:{self.next_user}", "event_type": "registration",
            "ts": min(ts, int(time.time() * 1000)), "user_id": str(self.next_user),
            "ctid_trader_account_id": "", "click_id": click["click_id"],
            "partner_id": link["partnerId"], "ancestors": self.ancestors[link["partnerId"]],
            "campaign": link.get("campaign") or "", "source": "sso_referral",
        }

    def today(self) -> None:
        """Today's clicks through the redirect, registrations through the SSO hook."""
        hook = {"Authorization": f"Bearer {self.hook}"}
        for link in self.links:
            for _ in range(link["weight"] * 4):
                human = self.random.random() < 0.85
                headers = {"User-Agent": self.random.choice(UAS) if human else BOT_UA,
                           "X-Country": self.random.choice(COUNTRIES)}
                if referer := self.random.choice(REFERRERS):
                    headers["Referer"] = referer
                answer = self.http.get(f"/r/{link['code']}", headers=headers)
                location = answer.headers.get("location", "")
                if human and "clickId=" in location and self.random.random() < 0.1:
                    click_id = location.split("clickId=")[1].split("&")[0]
                    self.next_user += 1
                    self.http.post("/hooks/sso/referral", headers=hook, json={
                        "userId": self.next_user, "clickId": click_id}).raise_for_status()
                    self.history_users.append({"user_id": str(self.next_user),
                                               "ts": int(time.time() * 1000)})

    def funnel_events(self) -> None:
        now = int(time.time() * 1000)
        events: list[dict[str, Any]] = []
        for user in self.history_users:
            uid, ts = int(user["user_id"]), int(user["ts"])

            def later(hours: float, ts: int = ts) -> int:
                return min(now, ts + int(hours * 3_600_000))

            if self.random.random() < 0.7:
                events.append({"eventId": f"kyc-{uid}", "type": "kyc_approved", "ts": later(2),
                               "userId": uid})
            if self.random.random() < 0.6:
                events.append({"eventId": f"acc-{uid}", "type": "account_opened",
                               "ts": later(3), "userId": uid, "ctidTraderAccountId": uid + 7})
            if self.random.random() < 0.45:
                amount = self.random.choice(["100", "250", "500", "1000", "2500"])
                events.append({"eventId": f"dep-{uid}", "type": "deposit", "ts": later(20),
                               "userId": uid, "amount": amount})
                if self.random.random() < 0.7:
                    lots = f"{self.random.randrange(1, 60) / 10:.1f}"
                    events.append({"eventId": f"trade-{uid}", "type": "trade", "ts": later(30),
                                   "userId": uid, "symbol": self.random.choice(
                                       ["EURUSD", "XAUUSD", "GBPUSD"]), "lots": lots,
                                   "commission": "7", "markup": "3.5"})
        headers = {"Authorization": f"Bearer {self.events}"}
        for start in range(0, len(events), 500):
            self.http.post("/api/events", headers=headers,
                           json={"events": events[start:start + 500]}).raise_for_status()

    def settle(self) -> None:
        """Until every click and registration is counted and the events are credited."""
        admin = {"Authorization": f"Bearer {self.admin}"}
        expected = self.redis.client.xlen(CLICK_STREAM)

        def counted() -> bool:
            body = self.http.get("/api/analytics/summary", headers=admin, params={
                "from": (datetime.now(UTC) - timedelta(days=self.days + 1)).date().isoformat()
            }).json()
            return body.get("clicks", 0) >= expected * 0.99 and float(body["depositAmount"]) > 0

        wait_until(counted, 180, "the demo's clicks and deposits in analytics", self.server,
                   interval_s=1.0)
        wait_until(lambda: self.http.get("/api/analytics/tree", headers=admin).json()[
            "childCount"] == 3, 60, "the partners sync", self.server, interval_s=1.0)

    def screenshots(self, directory: Path) -> list[Path]:
        from playwright.sync_api import sync_playwright

        directory.mkdir(parents=True, exist_ok=True)
        taken = []
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, size, agent in (("desktop", (1280, 800), DESKTOP_UA),
                                      ("phone", (390, 844), PHONE_UA)):
                page = browser.new_page(user_agent=agent, viewport={
                    "width": size[0], "height": size[1]}, device_scale_factor=1)
                errors: list[str] = []
                page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error"
                        else None)
                page.goto(f"{self.url}/dashboard?preset=30d")
                page.fill("#token", self.admin)
                page.click("button[type=submit]")
                page.wait_for_selector("#tree tr[data-partner] button.toggle:not([disabled])")
                page.wait_for_selector("#chart .main-svg")
                page.click("#tree tr[data-partner='apex-ib'] button.toggle")
                page.wait_for_selector("#tree tr[data-partner='apex-dubai']")
                path = directory / f"dashboard-{name}.png"
                page.screenshot(path=str(path), full_page=True)
                taken.append(path)
                if errors:
                    raise RuntimeError(f"console errors on the {name} page: {errors}")
                page.close()
            browser.close()
        return taken

    def close(self) -> None:
        self.children.close()


def _uuid7(ms: int, rng: random.Random) -> uuid.UUID:
    rand = rng.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62)
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dashboard-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60,
                        help="days of history (60: the last 30 days have a period before)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=SCREENSHOTS, help="where the PNGs go")
    parser.add_argument("--keep", action="store_true",
                        help="leave the demo running until Ctrl-C (prints its URL and token)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stops the children as Ctrl-C does
    with tempfile.TemporaryDirectory(prefix="dashboard-demo-") as work:
        demo = Demo(Path(work), args.days, args.seed)
        try:
            demo.start()
            demo.build_tree()
            demo.history()
            demo.today()
            demo.funnel_events()
            demo.settle()
            for path in demo.screenshots(args.out):
                print(path)
            if args.keep:
                print(f"{demo.url}/dashboard  admin token: {demo.admin}", flush=True)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            return 130
        finally:
            demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
