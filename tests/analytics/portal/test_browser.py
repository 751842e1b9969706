"""The portal in a real browser (Debian's Chromium under Playwright): the sign-in page's button,
the overview with its chart and no console error, a link created with its QR code, the copy
button, the sign-in link refused a second time, another partner's pages out of reach, a phone's
width."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.analytics.portal.conftest import Portal
from tests.browser import DESKTOP, PHONE, chromium, needs_chromium

pytestmark = [
    pytest.mark.servers,
    needs_chromium,
]


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


class Tab:
    """One browser context (its own cookies) on the portal, recording console errors."""

    def __init__(self, browser: Any, portal: Portal, *, phone: bool = False) -> None:
        self.portal = portal
        size = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 800}
        self.context = browser.new_context(user_agent=PHONE if phone else DESKTOP, viewport=size,
                                           accept_downloads=True)
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=portal.url)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def sign_in(self, partner_id: str) -> str:
        url = self.portal.link(partner_id)
        self.page.goto(url)
        self.page.click("#signin")
        self.page.wait_for_selector("#figures")
        return url

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(traffic: Portal, browser: Any) -> Iterator[Tab]:  # the data first: Playwright holds a loop
    opened = Tab(browser, traffic)
    yield opened
    opened.close()


def test_the_sign_in_button_opens_the_overview_and_its_chart_with_no_console_error(
    tab: Tab,
) -> None:
    tab.sign_in("apex")
    tab.page.wait_for_selector("#chart .main-svg")

    assert tab.page.url == f"{tab.portal.url}/portal"
    assert tab.text("#partner-name") == "Apex Capital"
    assert tab.text("#figures tr[data-key=clicks] .team") == "14"  # the last 30 days
    assert tab.page.locator("#chart .barlayer .point").count() > 0
    assert tab.page.locator("#funnel li").count() == 5
    assert tab.errors == []


def test_a_preset_changes_the_numbers(tab: Tab) -> None:
    tab.sign_in("apex")
    tab.page.click("a[href='?range=7d']")
    tab.page.wait_for_selector("a[aria-current=true][href='?range=7d']")
    week = tab.text("#figures tr[data-key=clicks] .team")
    tab.page.click("a[href='?range=30d']")
    tab.page.wait_for_selector("a[aria-current=true][href='?range=30d']")

    assert (week, tab.text("#figures tr[data-key=clicks] .team")) == ("8", "14")
    assert tab.errors == []


def test_a_created_link_shows_with_its_qr_code_and_the_copy_button_copies_it(tab: Tab) -> None:
    tab.sign_in("apex")
    tab.page.click("nav.tabs a[href^='/portal/links']")
    tab.page.fill("input[name=campaign]", "spring")
    tab.page.fill("input[name=subId]", "tg-channel")
    tab.page.click("#create-link button[type=submit]")
    created = tab.page.wait_for_selector("li.link.created")
    code = created.get_attribute("data-code")
    tab.page.click(f"#link-{code} details.qr summary")
    tab.page.wait_for_selector(f"#link-{code} details.qr[open] img")
    width = tab.page.eval_on_selector(  # decode() waits for the lazy image to arrive
        f"#link-{code} details.qr img", "img => img.decode().then(() => img.naturalWidth)")
    tab.page.click(f"#link-{code} button.copy")
    tab.page.wait_for_selector(f"#link-{code} button.copy.copied")
    copied = tab.page.evaluate("navigator.clipboard.readText()")

    assert code and tab.text(f"#link-{code} .meta") .count("spring") == 1
    assert width == 240
    assert copied == f"{tab.portal.url}/r/{code}"
    assert tab.errors == []


def test_the_sign_in_link_fails_the_second_time(tab: Tab, browser: Any) -> None:
    url = tab.sign_in("apex")
    other = Tab(browser, tab.portal)
    try:
        other.page.goto(url)
        refused = other.text("h1")
        other.page.goto(f"{tab.portal.url}/portal")
        outside = other.text("h1")
    finally:
        other.close()

    assert refused == "This sign-in link has already been used"
    assert outside == "Sign in to your partner portal"


def test_another_partner_s_pages_are_not_reachable(tab: Tab, browser: Any) -> None:
    rival = Tab(browser, tab.portal)
    try:
        rival.sign_in("rival")
        rival.page.goto(f"{tab.portal.url}/portal/links")
        rival.page.click("#create-link button[type=submit]")
        code = rival.page.wait_for_selector("li.link.created").get_attribute("data-code")
    finally:
        rival.close()
    tab.sign_in("apex")
    answers = {path: tab.page.goto(f"{tab.portal.url}{path}") for path in (
        f"/portal/links/{code}/qr.svg", "/portal/downline?partner=rival")}

    assert {path: answer.status for path, answer in answers.items()} == dict.fromkeys(answers, 404)
    assert tab.text("h1") == "Not found"
    tab.page.goto(f"{tab.portal.url}/portal/links")
    assert tab.page.locator(f"#link-{code}").count() == 0


def test_the_pages_fit_a_phone_s_width(traffic: Portal, browser: Any) -> None:
    phone = Tab(browser, traffic, phone=True)
    try:
        phone.sign_in("apex")
        widths = {}
        for path in ("/portal", "/portal/links", "/portal/downline", "/portal/commissions"):
            phone.page.goto(f"{traffic.url}{path}")
            widths[path] = phone.page.evaluate("document.documentElement.scrollWidth")
    finally:
        phone.close()

    assert widths == dict.fromkeys(widths, 390)
    assert phone.errors == []
