"""Headless Chromium for the browser tests: Debian's `chromium`, driven by Playwright, with a
person's user agent (headless Chromium announces `HeadlessChrome`, which the edge takes for a
bot)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest

CHROMIUM: Final = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS: Final = ["--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run"]
DESKTOP: Final = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/156.0.0.0 Safari/537.36")
PHONE: Final = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/156.0.0.0 Mobile Safari/537.36")
needs_chromium: Final = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="no chromium (apt-get install chromium chromium-driver)")


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser (skips the test where Playwright is not installed)."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
