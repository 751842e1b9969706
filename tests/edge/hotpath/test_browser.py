"""A real browser: a link on go.broker.test, the registration page on register.broker.test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edge.cli.embedded_redis import free_port
from tests.conftest import EdgeServer, RedisServer, make_settings
from tests.edge.helpers import create_link, put_partner

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)"),
]


def _browse(url: str, profile: Path) -> str:
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}",
         "--host-resolver-rules=MAP *.broker.test 127.0.0.1",
         # Headless Chromium says "HeadlessChrome", which the edge rightly treats as a bot.
         f"--user-agent={DESKTOP_CHROME}",
         "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return result.stdout


def test_browser_click_lands_on_registration_subdomain_with_attribution(
    redis_server: RedisServer, redis_client: object, tmp_path: Path
) -> None:
    port = free_port()
    settings = make_settings(
        tmp_path, redis_server.url,
        INVITE_REGISTRATION_URL=f"http://register.broker.test:{port}/demo/register",
        INVITE_ALLOWED_DESTINATIONS="register.broker.test",
        INVITE_ALLOWED_ORIGINS=f"http://register.broker.test:{port}",
        INVITE_PUBLIC_URL=f"http://go.broker.test:{port}",
        INVITE_COOKIE_DOMAIN=".broker.test",
        INVITE_COOKIE_SECURE="0",
    )
    edge = EdgeServer(settings, port=port).start()
    try:
        put_partner(edge, "ib-browser", type="ib")
        code = create_link(edge, "ib-browser", campaign="winter")["code"]
        page = _browse(f"http://go.broker.test:{port}/r/{code}?utm_source=mail", tmp_path / "p")
    finally:
        edge.stop()
    # The registration page (another subdomain) read /attribution from the edge's origin with
    # the cookie set on .broker.test: CORS with credentials and the cookie domain both work.
    assert "<dd>ib-browser</dd>" in page, page[-2000:]
    assert "<dd>winter</dd>" in page
