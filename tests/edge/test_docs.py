"""`/docs` renders `/openapi.json` in a real browser (Debian's Chromium under Playwright) from
files the app serves itself, with no console error; the viewer's files are cached and gzipped."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import DESKTOP, chromium, needs_chromium
from tests.conftest import EdgeServer

pytestmark = pytest.mark.servers


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def operation_count(edge: EdgeServer) -> int:
    with edge.client() as http:
        paths = http.get("/openapi.json").json()["paths"]
    return sum(len(methods) for methods in paths.values())


@needs_chromium
def test_docs_renders_every_operation_from_the_apps_own_files(
    edge: EdgeServer, browser: Any
) -> None:
    page = browser.new_page(user_agent=DESKTOP, viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requested: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requested.append(r.url))

    page.goto(f"{edge.url}/docs")
    page.wait_for_selector(".opblock", state="attached")

    assert page.locator(".opblock").count() == operation_count(edge)
    assert "invite-edge" in page.inner_text(".info .title")
    assert page.locator(".opblock-summary-path[data-path='/r/{code}']").count() == 2
    assert errors == []
    assert requested and all(url.startswith(edge.url + "/") for url in requested), requested
    page.close()


@needs_chromium
def test_an_operation_opens_with_its_parameters_and_answers(
    edge: EdgeServer, browser: Any
) -> None:
    page = browser.new_page(user_agent=DESKTOP, viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{edge.url}/docs")
    page.wait_for_selector(".opblock", state="attached")

    page.click(".opblock-summary-path[data-path='/api/partners']")
    page.wait_for_selector(".opblock.is-open .parameters", state="attached")

    shown = page.inner_text(".opblock.is-open")
    assert "cursor" in shown and "422" in shown and "nextCursor" in shown
    assert errors == []
    page.close()


def test_a_viewer_file_is_gzipped_and_kept_by_its_etag(edge: EdgeServer) -> None:
    with edge.client() as http:
        first = http.get("/docs/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip"})
        again = http.get("/docs/swagger-ui-bundle.js",
                         headers={"If-None-Match": first.headers["etag"]})

    assert first.status_code == 200
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in first.content  # httpx has decoded it
    assert len(gzip.compress(first.content)) < len(first.content) / 2
    assert again.status_code == 304


def test_the_docs_page_allows_scripts_from_the_app_only(edge: EdgeServer) -> None:
    with edge.client() as http:
        page = http.get("/docs")

    assert page.status_code == 200
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert 'src="/docs/swagger-ui-bundle.js"' in page.text
    assert "<script>" not in page.text  # no inline script: the CSP would refuse it


def test_an_unknown_docs_file_is_a_json_404(edge: EdgeServer) -> None:
    with edge.client() as http:
        response = http.get("/docs/..%2Fpyproject.toml")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
