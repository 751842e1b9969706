"""The dashboard in a real browser (Debian's Chromium under Playwright): no console error, charts
drawn, presets and filters showing the API's numbers, the view in the URL, the IB tree opened a
level, a partner token kept to its subtree, CSV files a spreadsheet cannot run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics.clickhouse import Client
from tests.analytics.fixtures_api import (
    BOT,
    TREE,
    click,
    insert_clicks,
    insert_registrations,
    insert_tree,
)
from tests.analytics.test_api import AnalyticsServer, api, partner_token, server, settings  # noqa: F401
from tests.analytics.test_funnel import funnel_server, story  # noqa: F401
from tests.browser import DESKTOP, chromium, needs_chromium
from tests.conftest import ADMIN_TOKEN

pytestmark = [
    pytest.mark.servers,
    needs_chromium,
]


@pytest.fixture
def browser() -> Iterator[Any]:
    # Per test: Playwright's sync API holds an event loop in this thread while it runs, and the
    # funnel fixture needs asyncio.run before it.
    with chromium() as launched:
        yield launched


class Dashboard:
    """One tab on the dashboard, recording console errors."""

    def __init__(self, browser: Any, served: AnalyticsServer) -> None:
        self.server = served
        self.page = browser.new_page(user_agent=DESKTOP, viewport={"width": 1280, "height": 900},
                                     accept_downloads=True)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, query: str = "", token: str = ADMIN_TOKEN) -> Dashboard:
        self.page.goto(f"http://127.0.0.1:{self.server.port}/dashboard{query}")
        self.page.fill("#token", token)
        self.show()
        return self

    def show(self) -> None:
        self.page.evaluate("document.getElementById('status').textContent = ''")
        self.page.click("button[type=submit]")
        self.settled()

    def settled(self) -> None:
        # A selector, not wait_for_function: the page's CSP refuses the eval that needs.
        self.page.wait_for_selector("body:not(.loading) #status:not(:empty)", state="attached")
        assert "error" not in (self.page.get_attribute("#status", "class") or ""), self.status

    @property
    def status(self) -> str:
        return str(self.page.inner_text("#status"))

    def card(self, key: str) -> int:
        text = self.page.inner_text(f"#cards .card[data-key={key}] .value")
        return int(text.replace(",", ""))

    def api(self, route: str, token: str = ADMIN_TOKEN, **params: str) -> dict[str, Any]:
        """The API's answer for the range the page shows."""
        window = {"from": self.page.input_value("#from"), "to": self.page.input_value("#to")}
        with self.server.client(token) as http:
            response = http.get(f"/api/analytics/{route}", params={**window, **params})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def close(self) -> None:
        self.page.close()


@pytest.fixture
def recent(api: AnalyticsServer, clickhouse: Client) -> AnalyticsServer:  # noqa: F811
    """Today: master 1 click, sub 2 (one a bot), affiliate 3 and a registration, other 1;
    ten days ago: 4 more of the affiliate's, one of a campaign that reads as a formula."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    today = now.replace(hour=0)
    before = today - timedelta(days=10)
    insert_tree(clickhouse)
    insert_clicks(clickhouse, [
        click(TREE.master, at=today), click(TREE.sub, at=today),
        click(TREE.sub, at=today, **BOT), *(click(TREE.leaf, at=today) for _ in range(3)),
        click(TREE.other, at=today),
        *(click(TREE.leaf, at=before + timedelta(hours=n), campaign="spring") for n in range(3)),
        click(TREE.leaf, at=before, campaign="=HYPERLINK(\"http://x\")"),
    ])
    insert_registrations(clickhouse, TREE.leaf, 1, at=today)
    return api


@pytest.fixture
def dashboard(browser: Any, recent: AnalyticsServer) -> Iterator[Dashboard]:
    tab = Dashboard(browser, recent)
    yield tab
    tab.close()
    assert tab.errors == []


def test_the_dashboard_loads_and_draws_its_charts_with_data(dashboard: Dashboard) -> None:
    dashboard.open()

    bars = dashboard.page.locator("#chart .barlayer .point").count()
    funnel_bars = dashboard.page.locator("#funnel-clicks .point").count()
    assert bars > 0 and funnel_bars == 5
    assert dashboard.card("clicks") == dashboard.api("summary")["clicks"] == 11


def test_a_preset_shows_the_api_s_numbers_for_its_period(dashboard: Dashboard) -> None:
    dashboard.open()
    thirty_days = dashboard.card("clicks")

    dashboard.page.select_option("#preset", "today")
    dashboard.settled()

    assert dashboard.page.input_value("#from") == datetime.now(UTC).date().isoformat()
    assert dashboard.card("clicks") == dashboard.api("summary")["clicks"] == 7
    assert thirty_days == 11
    assert "preset=today" in dashboard.page.url


def test_the_url_carries_the_filters_and_reopening_it_restores_the_view(
    dashboard: Dashboard, browser: Any,
) -> None:
    dashboard.open("?preset=7d")
    dashboard.page.fill("#partnerId", TREE.sub)
    dashboard.page.uncheck("#compare")
    dashboard.settled()
    dashboard.show()
    shared = dashboard.page.url
    shown = dashboard.card("clicks")

    again = Dashboard(browser, dashboard.server).open(shared[shared.index("?"):])
    try:
        assert "partnerId=sub-ib" in shared and "compare=0" in shared
        assert "token" not in shared.lower() and ADMIN_TOKEN not in shared
        assert again.page.input_value("#partnerId") == TREE.sub
        assert again.page.input_value("#preset") == "7d"
        assert not again.page.is_checked("#compare")
        assert again.card("clicks") == shown == dashboard.api(
            "summary", partnerId=TREE.sub, includeDownline="true")["clicks"] == 5
    finally:
        again.close()
    assert again.errors == []


def test_the_hours_view_is_kept_in_the_url(dashboard: Dashboard) -> None:
    dashboard.open("?preset=today")

    dashboard.page.click("text=Hours")
    dashboard.settled()

    assert "interval=hour" in dashboard.page.url
    points = dashboard.page.evaluate(
        "document.getElementById('chart').data[0].x.length")
    assert points == len(dashboard.api("timeseries", interval="hour")["points"])


def test_the_tree_opens_a_level_with_the_api_s_subtree_totals(dashboard: Dashboard) -> None:
    dashboard.open()
    master = dashboard.page.locator("#tree tr[data-partner='master-ib']")

    master.locator("button.toggle").click()
    dashboard.page.wait_for_selector("#tree tr[data-partner='sub-ib']")

    sub_row = dashboard.page.locator("#tree tr[data-partner='sub-ib'] td").all_inner_texts()
    level = dashboard.api("tree", partnerId=TREE.master)["children"][0]
    assert sub_row[1:5] == [TREE.sub, "2", "1", str(level["clicks"])]
    assert level["clicks"] == 9


def test_a_partner_token_sees_only_its_own_subtree(dashboard: Dashboard) -> None:
    token = partner_token(dashboard.server.settings, TREE.sub)
    dashboard.open(token=token)

    tree = dashboard.page.locator("#tree tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.partner)")
    text = dashboard.page.inner_text("main")
    assert tree == [TREE.leaf]
    assert TREE.master not in text and TREE.other not in text
    assert dashboard.card("clicks") == dashboard.api(
        "summary", token=token, includeDownline="true")["clicks"] == 9


def test_a_table_s_csv_neutralises_cells_a_spreadsheet_would_run(dashboard: Dashboard) -> None:
    dashboard.open()
    with dashboard.page.expect_download() as download:
        dashboard.page.click("button[title='Download Campaigns as CSV']")

    text = Path(download.value.path()).read_text()
    assert text.splitlines()[0].startswith("Campaign,People,Visitors,Reg.")
    assert '"\'=HYPERLINK(""http://x"")"' in text
    assert "\n=" not in text


def test_the_funnel_and_the_money_of_a_worked_example(
    story: AnalyticsServer, browser: Any  # noqa: F811
) -> None:
    tab = Dashboard(browser, story)
    try:
        tab.open("?preset=custom&from=2025-03-10&to=2025-03-12")
        steps = tab.page.locator("#funnel-table tbody tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
        money = tab.page.inner_text("#money")
    finally:
        tab.close()
    assert tab.errors == []
    assert [row[1] for row in steps] == ["3", "2", "1", "1", "1"]
    assert "700.00" in money and "80.10" in money and "12.50" in money
