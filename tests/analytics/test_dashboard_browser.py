"""The dashboard in a real browser (Debian's Chromium under Playwright): the funnel and the money
of a worked example, without a console error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.analytics.test_api import AnalyticsServer
from tests.analytics.test_funnel import funnel_server, story  # noqa: F401 - fixtures
from tests.conftest import ADMIN_TOKEN

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DESKTOP = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/156.0.0.0 Safari/537.36")

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="no chromium (apt-get install chromium chromium-driver)"),
]


def test_the_dashboard_shows_the_funnel_and_the_money(
    story: AnalyticsServer, tmp_path: Path  # noqa: F811
) -> None:
    errors: list[str] = []
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(user_agent=DESKTOP, viewport={"width": 1280, "height": 1400})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{story.port}/dashboard")
        page.fill("#token", ADMIN_TOKEN)
        page.fill("#from", "2025-03-10")
        page.fill("#to", "2025-03-12")
        page.click("button[type=submit]")
        page.wait_for_selector("#funnel .step")
        steps = page.locator("#funnel .step .count").all_inner_texts()
        money = page.locator("#money").inner_text()
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        page.check("input[name=cohort][value=events]")
        page.wait_for_timeout(500)
        browser.close()
    assert errors == []
    assert [text.split(" ")[0] for text in steps] == ["3", "2", "1", "1", "1"]
    assert "700.00" in money and "80.10" in money and "12.50" in money
