"""The portal under `invite analytics`'s app on the test's Redis and the session's chDB engine, a
small IB tree in the registry (copied to ClickHouse), and a browser-less partner that signs in."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from analytics.api import create_analytics_app
from analytics.clickhouse import Client
from analytics.partners_sync import PartnersSync
from tests.analytics.commissions.conftest import Programme, programme  # noqa: F401
from tests.analytics.fixtures_api import click, insert_clicks, insert_registrations
from tests.analytics.test_api import AnalyticsServer
from tests.conftest import ADMIN_TOKEN, RedisServer, make_settings

# partner id, parent, name, type: an IB with a desk and its affiliate, and a rival IB.
TREE = [
    ("apex", None, "Apex Capital", "ib"),
    ("apex-desk", "apex", "Apex Dubai desk", "ib"),
    ("signals", "apex-desk", "FX Signals", "affiliate"),
    ("rival", None, "Rival Partners", "ib"),
]
ANCESTORS = {"apex": [], "apex-desk": ["apex"], "signals": ["apex", "apex-desk"], "rival": []}
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


@pytest.fixture(scope="module")
def portal_server(redis_server: RedisServer, clickhouse_session: Client,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnalyticsServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("portal"), redis_server.url, INVITE_COOKIE_SECURE="0",
        INVITE_CLICKHOUSE_URL=f"chdb://{clickhouse_session.path}",  # type: ignore[attr-defined]
    )
    server = AnalyticsServer(settings, create_analytics_app(settings, clickhouse_session))
    yield server
    server.stop()


@dataclass
class Portal:
    """The portal's server with the tree in place, and ways in."""

    server: AnalyticsServer
    programme: Programme

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def admin(self) -> httpx.Client:
        return self.server.admin()

    def link(self, partner_id: str) -> str:
        """A sign-in link, as the admin asks for it."""
        with self.admin() as http:
            answer = http.post(f"/api/partners/{partner_id}/portal-link")
        assert answer.status_code == 201, answer.text
        url: str = answer.json()["url"]
        return url

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, headers={"Accept": "text/html"})

    @contextlib.contextmanager
    def signed_in(self, partner_id: str) -> Iterator[httpx.Client]:
        with self.browser() as http:
            assert sign_in(http, self.link(partner_id)).status_code == 303
            yield http

    def sync(self) -> None:
        """The partners sync's copy of the registry into ClickHouse, as the batcher makes it."""
        async def go() -> None:
            client = Redis.from_url(self.programme.redis_url, decode_responses=True)
            try:
                await PartnersSync(client, self.programme.clickhouse).sync_once()
            finally:
                await client.aclose()
        asyncio.run(go())


def sign_in(http: httpx.Client, url: str) -> httpx.Response:
    """Open the link, press the button; the answer to the button."""
    opened = http.get(url)
    assert opened.status_code == 200, opened.text
    return http.post("/portal/signin", data=hidden_fields(opened.text))


@pytest.fixture
def portal(portal_server: AnalyticsServer, programme: Programme) -> Portal:  # noqa: F811
    for partner_id, parent, name, kind in TREE:
        fields: dict[str, Any] = {"name": name, "type": kind}
        if parent:
            fields["parent_id"] = parent
        programme.partner(partner_id, **fields)
    found = Portal(portal_server, programme)
    found.sync()
    return found


def today() -> datetime:
    return datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)


@pytest.fixture
def traffic(portal: Portal) -> Portal:
    """Today: apex 2 clicks (one a link preview), its desk 3, signals 4 and 2 registrations,
    rival 5 and 3 registrations; eight days ago signals 6 more."""
    clickhouse = portal.programme.clickhouse
    now = today()
    rows = [
        click("apex", at=now, code="apexcode", ancestors=[]),
        click("apex", at=now, code="apexcode", ancestors=[], kind="preview", is_human=0,
              bot_family="TelegramBot"),
        *(click("apex-desk", at=now, ancestors=ANCESTORS["apex-desk"]) for _ in range(3)),
        *(click("signals", at=now, ancestors=ANCESTORS["signals"]) for _ in range(4)),
        *(click("rival", at=now, code="rivalcode", ancestors=[]) for _ in range(5)),
        *(click("signals", at=now - timedelta(days=8), ancestors=ANCESTORS["signals"])
          for _ in range(6)),
    ]
    insert_clicks(clickhouse, rows)
    insert_registrations(clickhouse, "signals", 2, at=now, ancestors=ANCESTORS["signals"])
    insert_registrations(clickhouse, "rival", 3, at=now, ancestors=[])
    return portal


def admin_token() -> str:
    return ADMIN_TOKEN


SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
