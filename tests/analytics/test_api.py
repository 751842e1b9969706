"""The analytics API over HTTP: tokens and scopes, every route, bad parameters, ClickHouse down."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import clickhouse_connect
import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from analytics.api import MAX_CONCURRENT_EXPORTS, create_analytics_app, create_analytics_routes
from analytics.clickhouse import Client
from edge.cli.embedded_redis import free_port
from edge.config import Settings
from edge.errors import ClickHouseUnavailable
from edge.registry import tokens as partner_tokens
from edge.signing import TokenSigner
from tests.analytics.fixtures_api import (
    BOT,
    DAY,
    TREE,
    click,
    hours,
    insert_clicks,
    insert_registrations,
    insert_tree,
)
from tests.conftest import ADMIN_TOKEN, make_settings, wait_for

ONE_DAY = {"from": "2025-03-10", "to": "2025-03-10"}  # a bare `to` date includes that day


def partner_token(settings: Settings, partner_id: str) -> str:
    """What `POST /api/partners/{partnerId}/tokens` issues."""
    signer = TokenSigner("partner-api", settings.secrets)
    return signer.sign(orjson.dumps({"p": partner_id, "iat": int(time.time())}))


class AnalyticsServer:
    """An app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Settings, app: ASGIApp) -> None:
        self.settings = settings
        self.port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, what="the analytics app to start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=headers, timeout=20)

    def admin(self) -> httpx.Client:
        return self.client(ADMIN_TOKEN)

    def partner(self, partner_id: str) -> httpx.Client:
        return self.client(partner_token(self.settings, partner_id))


@pytest.fixture(scope="module")
def settings(clickhouse_session: Client, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The export client opens its own handle on the same engine, as in production.
    return make_settings(
        tmp_path_factory.mktemp("analytics-api"), "redis://127.0.0.1:1/0",
        INVITE_CLICKHOUSE_URL=f"chdb://{clickhouse_session.path}",  # type: ignore[attr-defined]
    )


@pytest.fixture(scope="module")
def server(settings: Settings, clickhouse_session: Client) -> Iterator[AnalyticsServer]:
    # `create_analytics_app` on the session's chDB engine, as `invite analytics` runs it.
    running = AnalyticsServer(settings, create_analytics_app(settings, clickhouse_session))
    yield running
    running.stop()


@pytest.fixture
def api(server: AnalyticsServer, clickhouse: Client) -> AnalyticsServer:
    """The server, with every table emptied (by `clickhouse`) before the test."""
    return server


@pytest.fixture
def tree_clicks(api: AnalyticsServer, clickhouse: Client) -> Client:
    insert_tree(clickhouse)
    insert_clicks(clickhouse, [
        click(TREE.master),
        click(TREE.sub), click(TREE.sub, **BOT),
        click(TREE.leaf), click(TREE.leaf), click(TREE.leaf),
        click(TREE.other),
        click(outcome="orphan"),
    ])
    insert_registrations(clickhouse, TREE.leaf, 1)
    return clickhouse


def summary(client: httpx.Client, **params: str) -> dict[str, Any]:
    response = client.get("/api/analytics/summary", params={**ONE_DAY, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {ADMIN_TOKEN}"},
     {"Authorization": "Bearer not-a-token"}, {"Authorization": "Bearer abc.def"}],
)
def test_a_request_without_a_valid_token_is_401(
    api: AnalyticsServer, headers: dict[str, str]
) -> None:
    with api.client(None) as http:
        response = http.get("/api/analytics/summary", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_token_signed_for_another_purpose_is_401(api: AnalyticsServer) -> None:
    cookie_like = TokenSigner("attribution", api.settings.secrets).sign(b'{"p": "master-ib"}')

    with api.client(cookie_like) as http:
        assert http.get("/api/analytics/summary").status_code == 401


def test_a_partner_token_issued_before_a_revocation_is_401_and_a_new_one_works(
    api: AnalyticsServer, clickhouse: Client
) -> None:
    now_ms = int(time.time() * 1000)
    signer = TokenSigner("partner-api", api.settings.secrets)
    old = partner_tokens.issue(signer, "revoked-ib", now_ms - 60_000)
    new = partner_tokens.issue(signer, "revoked-ib", now_ms + 1)
    clickhouse.insert(  # what the partners sync copies after DELETE /api/partners/…/tokens
        "invite.partners",
        [["revoked-ib", "", "ib", "active", "", [], 1, now_ms, now_ms]],
        column_names=["partner_id", "parent_id", "type", "status", "name", "ancestors", "level",
                      "updated_at", "tokens_not_before"],
        column_type_names=["String", "String", "String", "String", "String", "Array(String)",
                           "UInt8", "DateTime64(3, 'UTC')", "DateTime64(3, 'UTC')"],
    )

    with api.client(old) as http:
        refused = http.get("/api/analytics/summary")
    with api.client(new) as http:
        accepted = http.get("/api/analytics/summary")

    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
    assert accepted.status_code == 200, accepted.text


def test_admin_sees_every_partner_and_the_orphans_apart(
    tree_clicks: Client, api: AnalyticsServer
) -> None:
    with api.admin() as http:
        body = summary(http)

    clicks = {
        "filter": {"from": "2025-03-10T00:00:00.000Z", "to": "2025-03-11T00:00:00.000Z",
                   "partnerId": None, "includeDownline": False, "campaign": None},
        "clicks": 7, "humanClicks": 6, "botClicks": 1, "uniqueVisitors": 6,
        "registrations": 1, "conversionRate": round(1 / 6, 4), "suspendedClicks": 0,
        "orphanClicks": 1, "unresolvedClicks": 0,
    }
    assert {name: body[name] for name in clicks} == clicks
    # The funnel events' figures ride along (none here), and the admin's unattributed count.
    assert (body["depositAmount"], body["firstDeposits"], body["unattributedEvents"]) == (
        "0.00", 0, 0
    )


def test_a_partner_token_defaults_to_its_own_clicks(
    tree_clicks: Client, api: AnalyticsServer
) -> None:
    with api.partner(TREE.sub) as http:
        body = summary(http)

    assert body["filter"]["partnerId"] == TREE.sub
    assert (body["clicks"], body["humanClicks"], body["botClicks"]) == (2, 1, 1)
    assert body["orphanClicks"] is None


def test_a_master_ib_token_with_downline_sees_its_whole_tree(
    tree_clicks: Client, api: AnalyticsServer
) -> None:
    with api.partner(TREE.master) as http:
        body = summary(http, includeDownline="true")

    assert (body["clicks"], body["registrations"], body["orphanClicks"]) == (6, 1, None)


def test_a_partner_token_may_ask_for_a_descendant(
    tree_clicks: Client, api: AnalyticsServer
) -> None:
    with api.partner(TREE.master) as http:
        body = summary(http, partnerId=TREE.leaf)

    assert body["clicks"] == 3


@pytest.mark.parametrize("asked", [TREE.master, TREE.other, "nobody-at-all"])
def test_a_partner_token_asking_outside_its_subtree_is_403(
    tree_clicks: Client, api: AnalyticsServer, asked: str
) -> None:
    with api.partner(TREE.sub) as http:
        for route in ("summary", "timeseries", "clicks.csv"):
            response = http.get(f"/api/analytics/{route}", params={**ONE_DAY, "partnerId": asked})
            assert response.status_code == 403, route
            assert response.json()["error"] == {
                "code": "forbidden", "message": f"partner {asked} is not in the subtree of sub-ib",
            }


def test_a_partner_token_breakdown_by_partner_lists_only_its_subtree(
    tree_clicks: Client, api: AnalyticsServer
) -> None:
    with api.partner(TREE.sub) as http:
        response = http.get(
            "/api/analytics/breakdown",
            params={**ONE_DAY, "by": "partner", "includeDownline": "1"},
        )

    assert [row["key"] for row in response.json()["rows"]] == [TREE.leaf, TREE.sub]


# --- routes --------------------------------------------------------------------------------


def test_timeseries_by_day_is_zero_filled(api: AnalyticsServer, clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(), click(at=DAY + timedelta(days=2))])

    with api.admin() as http:
        response = http.get(
            "/api/analytics/timeseries",
            params={"from": "2025-03-10", "to": "2025-03-12", "interval": "day"},
        )

    assert response.status_code == 200
    body = response.json()
    assert body["interval"] == "day"
    clicks = ("start", "clicks", "humanClicks", "botClicks", "uniqueVisitors", "registrations")
    assert [{name: point[name] for name in clicks} for point in body["points"]] == [
        {"start": "2025-03-10T00:00:00.000Z", "clicks": 1, "humanClicks": 1, "botClicks": 0,
         "uniqueVisitors": 1, "registrations": 0},
        {"start": "2025-03-11T00:00:00.000Z", "clicks": 0, "humanClicks": 0, "botClicks": 0,
         "uniqueVisitors": 0, "registrations": 0},
        {"start": "2025-03-12T00:00:00.000Z", "clicks": 1, "humanClicks": 1, "botClicks": 0,
         "uniqueVisitors": 1, "registrations": 0},
    ]


def test_timeseries_by_hour(api: AnalyticsServer, clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(at=DAY + hours(1))])

    with api.admin() as http:
        response = http.get(
            "/api/analytics/timeseries",
            params={"from": "2025-03-10T00:00:00Z", "to": "2025-03-10T03:00:00Z",
                    "interval": "hour"},
        )

    assert [p["clicks"] for p in response.json()["points"]] == [0, 1, 0]


def test_breakdown_returns_the_top_values(api: AnalyticsServer, clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click(country="DE"), click(country="DE"), click(country="FR")])

    with api.admin() as http:
        response = http.get("/api/analytics/breakdown", params={**ONE_DAY, "by": "country",
                                                               "limit": "1"})

    body = response.json()
    clicks = {"key": "DE", "clicks": 2, "humanClicks": 2, "botClicks": 0, "uniqueVisitors": 2,
              "registrations": None}
    assert {name: value for name, value in body.items() if name != "rows"} == {
        "filter": {"from": "2025-03-10T00:00:00.000Z", "to": "2025-03-11T00:00:00.000Z",
                   "partnerId": None, "includeDownline": False, "campaign": None},
        "by": "country", "limit": 1,
    }
    assert [{name: row[name] for name in clicks} for row in body["rows"]] == [clicks]
    assert body["rows"][0]["depositors"] == 0  # the funnel events' figures ride along


def test_clicks_csv_is_an_attachment_with_a_header_and_click_ids(
    tree_clicks: Client, api: AnalyticsServer
) -> None:
    with api.partner(TREE.master) as http:
        response = http.get(
            "/api/analytics/clicks.csv", params={**ONE_DAY, "includeDownline": "true"}
        )

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="clicks-master-ib-20250310-20250311.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 6
    assert all(len(row["click_id"]) == 36 for row in rows)
    assert {row["partner_id"] for row in rows} == {TREE.master, TREE.sub, TREE.leaf}


def test_a_csv_download_in_progress_does_not_hold_up_other_questions(
    api: AnalyticsServer, clickhouse: Client
) -> None:
    insert_clicks(clickhouse, [
        click(at=DAY + timedelta(seconds=n), code="c" * 60, destination="d" * 200)
        for n in range(40_000)
    ])

    with api.admin() as http, http.stream(
        "GET", "/api/analytics/clicks.csv", params=ONE_DAY
    ) as download:
        assert download.status_code == 200
        chunks = download.iter_bytes()
        first = next(chunks)
        assert first.startswith(b"click_id,ts,")
        # The download is stalled mid-way; the shared client still answers.
        assert summary(http)["clicks"] == 40_000
        rest = b"".join(chunks)

    assert (first + rest).count(b"\n") == 40_001


def test_exports_beyond_the_limit_are_told_to_retry(
    api: AnalyticsServer, clickhouse: Client
) -> None:
    insert_clicks(clickhouse, [
        click(at=DAY + timedelta(seconds=n), code="c" * 60) for n in range(40_000)
    ])
    with api.admin() as http:
        downloads = [
            http.stream("GET", "/api/analytics/clicks.csv", params=ONE_DAY)
            for _ in range(MAX_CONCURRENT_EXPORTS)
        ]
        opened = [download.__enter__() for download in downloads]
        try:
            assert all(response.status_code == 200 for response in opened)
            response = http.get("/api/analytics/clicks.csv", params=ONE_DAY)
            assert response.status_code == 429
            assert response.json()["error"]["code"] == "too_many_exports"
        finally:
            for download in downloads:
                download.__exit__(None, None, None)
        wait_for(lambda: http.get("/api/analytics/clicks.csv",
                                  params={"from": "2025-01-01", "to": "2025-01-02"}
                                  ).status_code == 200,
                 what="the exports to be released")


def test_the_dashboard_is_a_page_with_its_script_and_styles(api: AnalyticsServer) -> None:
    with api.client(None) as http:
        page = http.get("/dashboard")
        script = http.get("/dashboard/dashboard.js")
        styles = http.get("/dashboard/dashboard.css")
        missing = http.get("/dashboard/secrets.txt")
        home = http.get("/", follow_redirects=False)

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/dashboard/dashboard.js"' in page.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert "sessionStorage" in script.text
    assert styles.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404
    assert (home.status_code, home.headers["location"]) == (302, "/dashboard")


def test_health_and_readiness(api: AnalyticsServer) -> None:
    with api.client(None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz").json()
        assert (ready["status"], ready["clickhouse"]) == ("ready", "ok")
        # The settings name a Redis nobody runs: the batcher's lag is unknown, not a failure.
        assert ready["batcher"].startswith("unknown: Redis did not answer")


def test_other_methods_are_405(api: AnalyticsServer) -> None:
    with api.admin() as http:
        response = http.post("/api/analytics/summary")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


# --- bad parameters -----------------------------------------------------------------------

BAD_PARAMETERS = [
    ("summary", {"from": "yesterday"}, "from 'yesterday' is not an ISO 8601 date"),
    ("summary", {"to": "2025-13-01"}, "to '2025-13-01' is not an ISO 8601 date"),
    ("summary", {"from": "2025-03-10", "to": "2025-03-09"}, "must be before to"),
    ("summary", {"from": "2024-01-01", "to": "2025-03-01"}, "at most 400 days"),
    ("summary", {"from": "1970-01-01"}, "from 1970-01-01T00:00:00.000Z is outside"),
    ("summary", {"partnerId": "bad id!"}, "partnerId 'bad id!' must be 1-64 characters"),
    ("summary", {"campaign": "x'; DROP TABLE invite.clicks; --"}, "campaign must be 1-128"),
    ("summary", {"includeDownline": "maybe"}, "includeDownline 'maybe' must be true or false"),
    ("summary", {"includedownline": "true"}, "unknown parameter 'includedownline'"),
    ("summary", {"from": "x" * 201}, "parameter from is longer than 200 characters"),
    ("timeseries", {"interval": "week"}, "interval 'week' must be one of hour, day"),
    ("timeseries", {"interval": "hour"}, "interval=hour covers at most 31 days"),
    ("breakdown", {}, "by is required: one of country, device"),
    ("breakdown", {"by": "city"}, "by 'city' must be one of country"),
    ("breakdown", {"by": "country", "limit": "0"}, "limit '0' must be a whole number from 1"),
    ("breakdown", {"by": "country", "limit": "101"}, "limit '101' must be a whole number"),
    ("breakdown", {"by": "country", "limit": "ten"}, "limit 'ten' must be a whole number"),
    ("clicks.csv", {"interval": "day"}, "unknown parameter 'interval'"),
]


@pytest.mark.parametrize(("route", "params", "message"), BAD_PARAMETERS)
def test_a_bad_parameter_is_422_naming_it_and_its_rule(
    api: AnalyticsServer, route: str, params: dict[str, str], message: str
) -> None:
    if route == "timeseries" and params.get("interval") == "hour":
        params = {**params, "from": "2025-01-01", "to": "2025-03-01"}
    with api.admin() as http:
        response = http.get(f"/api/analytics/{route}", params=params)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert message in error["message"]


def test_a_repeated_parameter_is_422(api: AnalyticsServer) -> None:
    with api.admin() as http:
        response = http.get("/api/analytics/summary?partnerId=a&partnerId=b")

    assert response.status_code == 422
    assert response.json()["error"]["message"] == "parameter partnerId is given more than once"


def test_dates_and_times_with_offsets_are_read_as_utc(api: AnalyticsServer) -> None:
    with api.admin() as http:
        body = summary(http, **{"from": "2025-03-10T02:00:00+02:00", "to": "2025-03-10T12:30"})

    assert body["filter"]["from"] == "2025-03-10T00:00:00.000Z"
    assert body["filter"]["to"] == "2025-03-10T12:30:00.000Z"


# --- ClickHouse unreachable, and the routes mounted in another app -------------------------


def _unreachable() -> Client:
    return clickhouse_connect.get_client(host="127.0.0.1", port=free_port(), connect_timeout=1)


def test_clickhouse_unreachable_is_503_saying_what_to_do(settings: Settings) -> None:
    # The bare routes, as `invite run` mounts them into the edge's app.
    app = Starlette(routes=create_analytics_routes(
        settings, _unreachable, export_client_factory=_unreachable,
    ))
    served = AnalyticsServer(settings, app)
    try:
        with served.admin() as http:
            for route in ("summary", "timeseries", "breakdown?by=os", "clicks.csv"):
                response = http.get(f"/api/analytics/{route}")
                assert response.status_code == 503, route
                error = response.json()["error"]
                assert error["code"] == "clickhouse_unavailable"
                assert "check that it is running and that INVITE_CLICKHOUSE_URL" in (
                    error["message"]
                )
    finally:
        served.stop()


def test_schema_not_migrated_is_503_saying_to_migrate(
    settings: Settings, clickhouse_session: Client
) -> None:
    app = Starlette(routes=create_analytics_routes(
        settings, lambda: _WithoutTables(clickhouse_session),  # type: ignore[arg-type,return-value]
    ))
    served = AnalyticsServer(settings, app)
    try:
        with served.admin() as http:
            response = http.get("/api/analytics/summary")
    finally:
        served.stop()

    assert response.status_code == 503
    assert "run `invite migrate`" in response.json()["error"]["message"]


class _WithoutTables:
    """The shared client, as on a ClickHouse where `invite migrate` has not run."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return self._client.query(sql.replace("invite.", "invite.missing_"), parameters=parameters)


def test_a_provider_without_a_client_yet_is_503_with_its_own_message(settings: Settings) -> None:
    def not_open_yet() -> Client:
        raise ClickHouseUnavailable("ClickHouse is not open yet: retry in a moment")

    served = AnalyticsServer(settings, create_analytics_app(settings, not_open_yet))
    try:
        with served.admin() as http:
            summary_response = http.get("/api/analytics/summary")
            ready = http.get("/readyz")
    finally:
        served.stop()

    assert summary_response.status_code == 503
    assert summary_response.json()["error"] == {
        "code": "clickhouse_unavailable",
        "message": "ClickHouse is not open yet: retry in a moment",
    }
    assert ready.status_code == 503
