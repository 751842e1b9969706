"""The analytics routes fed hostile values: never a 5xx, never a traceback; calendar edges and
non-ASCII digits refused by name; one spelling of a partner token; CSV cells that a spreadsheet
would run as formulas neutralised; /readyz saying when the batcher falls behind."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.api import create_analytics_app
from analytics.clickhouse import Client
from edge.config import Settings
from tests.analytics.fixtures_api import TREE, click, insert_clicks, insert_tree
from tests.analytics.test_api import ONE_DAY, AnalyticsServer, partner_token
from tests.conftest import ADMIN_TOKEN, RedisServer, Tracebacks, make_settings

pytestmark = pytest.mark.servers

ROUTES = ["summary", "timeseries", "breakdown", "clicks.csv"]


@pytest.fixture(scope="module")
def hostile_settings(
    clickhouse_session: Client, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("analytics-hostile"), "redis://127.0.0.1:1/0",
        INVITE_CLICKHOUSE_URL=f"chdb://{clickhouse_session.path}",  # type: ignore[attr-defined]
    )


@pytest.fixture(scope="module")
def hostile_server(
    hostile_settings: Settings, clickhouse_session: Client
) -> Iterator[AnalyticsServer]:
    running = AnalyticsServer(
        hostile_settings, create_analytics_app(hostile_settings, clickhouse_session)
    )
    yield running
    running.stop()


@pytest.fixture
def api(hostile_server: AnalyticsServer, clickhouse: Client) -> AnalyticsServer:
    return hostile_server


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("edge_of_time", [
    {"to": "9999-12-31"}, {"from": "0001-01-01T00:00:00+01:00"},
    {"from": "9999-12-31T23:59:59-01:00"}, {"from": "0001-01-01", "to": "0001-01-02"},
    {"to": "2199-12-31T23:59:59.999999-23:59"},
])
def test_dates_at_the_edge_of_the_calendar_are_a_422_naming_the_parameter(
    api: AnalyticsServer, tracebacks: Tracebacks, route: str, edge_of_time: dict[str, str]
) -> None:
    params = {"by": "country"} if route == "breakdown" else {}
    with api.admin() as http:
        response = http.get(f"/api/analytics/{route}", params={**params, **edge_of_time})
    assert response.status_code == 422, response.text
    assert next(iter(edge_of_time)) in response.json()["error"]["message"]


@pytest.mark.parametrize("limit", ["²", "١٢٣", "７", "+5", " 5", "5_0"])
def test_a_breakdown_limit_in_other_digits_is_a_422(
    api: AnalyticsServer, tracebacks: Tracebacks, limit: str
) -> None:
    with api.admin() as http:
        response = http.get("/api/analytics/breakdown", params={"by": "country", "limit": limit})
    assert response.status_code == 422
    assert "limit" in response.json()["error"]["message"]


def test_a_partner_token_in_another_spelling_is_refused(
    api: AnalyticsServer, clickhouse: Client
) -> None:
    insert_tree(clickhouse)
    token = partner_token(api.settings, TREE.sub)
    body, tag = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    flipped = tag[:-1] + alphabet[alphabet.index(tag[-1]) ^ 1]
    with api.client(token) as http:
        assert http.get("/api/analytics/summary").status_code == 200
    for spelling in (f"{token}=", f"{body}.{flipped}", token.replace("-", "+").replace("_", "/"),
                     f"{body}=.{tag}"):
        if spelling == token:
            continue
        with api.client(spelling) as http:
            assert http.get("/api/analytics/summary").status_code == 401, spelling


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(
    api: AnalyticsServer, clickhouse: Client
) -> None:
    insert_clicks(clickhouse, [
        click(campaign="=1+2", sub_id="+SUM(A1)", country="@X", referer_host="=1+2",
              code="-cmd"),
        click(campaign="\tTAB", sub_id="\rCR", country="DE", referer_host="google.com"),
    ])
    with api.admin() as http:
        response = http.get("/api/analytics/clicks.csv", params=ONE_DAY)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    cells = [row[name] for row in rows for name in
             ("campaign", "sub_id", "country", "referer_host", "code")]
    assert "'=1+2" in cells and "'+SUM(A1)" in cells and "'@X" in cells and "'-cmd" in cells
    assert "'\tTAB" in cells and "'\rCR" in cells and "DE" in cells and "google.com" in cells
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]


text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
names = ["from", "to", "partnerId", "includeDownline", "campaign", "interval", "by", "limit"]


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(route=st.sampled_from(ROUTES), query=st.dictionaries(st.sampled_from(names), text,
                                                            max_size=5),
       token=st.sampled_from([ADMIN_TOKEN, "partner", "junk"]))
def test_no_generated_question_gets_a_5xx_or_logs_a_traceback(
    api: AnalyticsServer, tracebacks: Tracebacks, route: str, query: dict[str, str], token: str,
) -> None:
    bearer = partner_token(api.settings, TREE.sub) if token == "partner" else token
    with api.client(bearer) as http:
        response = http.get(f"/api/analytics/{route}", params=query)
    assert response.status_code < 500, (route, query, response.text[:300])


def test_readyz_answers_503_with_the_reason_when_the_batcher_falls_behind(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse_session: Client,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings_ = make_settings(
        tmp_path_factory.mktemp("lagging"), redis_server.url, INVITE_READY_MAX_LAG_S="60",
        INVITE_CLICKHOUSE_URL=f"chdb://{clickhouse_session.path}",  # type: ignore[attr-defined]
    )
    server = AnalyticsServer(settings_, create_analytics_app(settings_, clickhouse_session))
    try:
        with server.client(None) as http:
            redis_client.xgroup_create("invite:clicks", "batcher", id="0", mkstream=True)
            caught_up: dict[str, Any] = http.get("/readyz").json()
            # An entry written five minutes ago that the batcher has not taken.
            redis_client.xadd("invite:clicks", {"e": b"{}"},
                              id=f"{_ms_ago(300_000)}-0")
            behind = http.get("/readyz")
    finally:
        server.stop()
    assert caught_up["status"] == "ready" and caught_up["batcher"] == "ok"
    assert behind.status_code == 503
    assert behind.json()["batcher"].startswith("the batcher is more than 60 s behind")
    assert "invite:clicks: 1 entries" in behind.json()["batcher"]


def _ms_ago(ms: int) -> int:
    import time

    return time.time_ns() // 1_000_000 - ms
