"""A disabled link answers like an unknown code, on every edge at once, and its clicks are still
recorded for the partner (outcome "disabled") all the way into ClickHouse."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import EdgeServer, RedisServer, stream_events, wait_for
from tests.edge.helpers import create_link, put_partner

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[3]
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def _set_status(edge: EdgeServer, code: str, status: str) -> None:
    with edge.admin() as admin:
        response = admin.patch(f"/api/links/{code}", json={"status": status})
    assert response.status_code == 200, response.text


def _click(edge: EdgeServer, code: str, method: str = "GET") -> Any:
    with edge.client() as client:
        return client.request(method, f"/r/{code}", headers={"User-Agent": CHROME})


@pytest.fixture
def link(edge: EdgeServer) -> dict[str, Any]:
    put_partner(edge, "ib-1", type="ib")
    put_partner(edge, "aff-1", parentPartnerId="ib-1")
    return create_link(edge, "aff-1", campaign="spring", subId="banner-a")


def test_a_disabled_link_answers_like_an_unknown_code(
    edge: EdgeServer, link: dict[str, Any]
) -> None:
    assert _click(edge, link["code"]).status_code == 302  # cached as active first
    _set_status(edge, link["code"], "disabled")
    unknown = _click(edge, "NoSuchCode1")
    wait_for(lambda: _click(edge, link["code"]).status_code == 404, what="the link to stop")
    disabled = _click(edge, link["code"])
    assert disabled.status_code == 404
    assert disabled.text == unknown.text
    assert disabled.headers["content-type"] == unknown.headers["content-type"]
    assert "set-cookie" not in disabled.headers
    assert "location" not in disabled.headers
    assert _click(edge, link["code"], "HEAD").status_code == 404


def test_a_disabled_click_is_recorded_with_its_partner(
    edge: EdgeServer, link: dict[str, Any], redis_client: redis.Redis
) -> None:
    _set_status(edge, link["code"], "disabled")
    assert _click(edge, link["code"]).status_code == 404
    (event,) = stream_events(redis_client)
    assert event["outcome"] == "disabled"
    assert (event["partner_id"], event["ancestors"]) == ("aff-1", ["ib-1"])
    assert (event["code"], event["campaign"], event["sub_id"]) == (link["code"], "spring",
                                                                   "banner-a")
    assert event["destination"] == ""
    with edge.client() as client:
        metrics = client.get("/metrics").text
    assert 'invite_redirects_total{kind="person",outcome="disabled"} 1.0' in metrics


def test_a_disabled_link_goes_to_the_fallback_url_when_one_is_set(
    edge_factory: Callable[..., EdgeServer],
) -> None:
    edge = edge_factory(INVITE_FALLBACK_URL="https://www.broker.test/")
    put_partner(edge, "aff-1")
    code = create_link(edge, "aff-1")["code"]
    _set_status(edge, code, "disabled")
    response = _click(edge, code)
    assert response.status_code == 302
    assert response.headers["location"] == "https://www.broker.test/"
    assert "set-cookie" not in response.headers


def test_an_enabled_link_is_credited_again(edge: EdgeServer, link: dict[str, Any]) -> None:
    _set_status(edge, link["code"], "disabled")
    _set_status(edge, link["code"], "active")
    response = _click(edge, link["code"])
    assert response.status_code == 302
    assert "partnerId=aff-1" in response.headers["location"]
    assert response.headers["set-cookie"].startswith("invite_ref=")


def test_a_disable_reaches_every_edge_through_the_change_channel(
    edge_factory: Callable[..., EdgeServer],
) -> None:
    """Two edge processes on one Redis, each with the link cached: the PATCH goes to one, the
    other stops the link as soon as the registry's change message arrives."""
    one, other = edge_factory(), edge_factory()
    put_partner(one, "aff-1")
    code = create_link(one, "aff-1")["code"]
    for edge in (one, other):
        assert _click(edge, code).status_code == 302
        assert edge.app.state.resolver.cached(code)[0]  # served from its cache from now on
    _set_status(one, code, "disabled")
    wait_for(lambda: not other.app.state.resolver.cached(code)[0], timeout=5.0,
             what="the other edge to drop its cached link")
    assert _click(other, code).status_code == 404
    _set_status(one, code, "active")
    wait_for(lambda: _click(other, code).status_code == 302, timeout=5.0,
             what="the other edge to serve the link again")


def test_disabled_clicks_reach_clickhouse_with_their_partner(
    edge: EdgeServer, link: dict[str, Any], redis_server: RedisServer, tmp_path: Path
) -> None:
    _set_status(edge, link["code"], "disabled")
    for _ in range(3):
        _click(edge, link["code"])
    _click(edge, "NoSuchCode1")
    # The batcher in a process of its own, with its own chDB (tests/analytics/test_batcher.py).
    drained = subprocess.run(
        [sys.executable, "-m", "tests.analytics.test_batcher", "drain", redis_server.url,
         str(tmp_path / "clickhouse"), "disabled-test"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    assert drained.returncode == 0, drained.stderr[-2000:]
    found = json.loads(drained.stdout.strip().splitlines()[-1])
    assert found["rows"] == 4  # nothing dead-lettered
    assert found["partner_rows"] == 3  # the disabled clicks, with their partner
    assert found["credited_rows"] == 0
