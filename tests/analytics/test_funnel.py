"""The funnel and the money in the analytics API: worked out by hand from a handful of events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

from analytics.api import create_analytics_app
from analytics.clickhouse import Client
from tests.analytics.fixtures_api import DAY, TREE, click, insert_clicks, insert_registrations
from tests.analytics.test_api import AnalyticsServer, partner_token
from tests.analytics.test_crediting import Funnel
from tests.conftest import RedisServer, make_settings

pytestmark = pytest.mark.servers

MS = int(DAY.timestamp() * 1000)
RANGE = {"from": "2025-03-10", "to": "2025-03-12"}


def click_id_at(offset_ms: int) -> str:
    """A UUIDv7 of the click's own millisecond, as the edge makes them."""
    rand = uuid.uuid4().int
    value = ((MS + offset_ms) << 80) | (0x7 << 76) | ((rand >> 64) & 0xFFF) << 64 | (
        0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


@pytest.fixture(scope="module")
def funnel_server(
    clickhouse_session: Client, redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AnalyticsServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("funnel"), redis_server.url,
        INVITE_CLICKHOUSE_URL=f"chdb://{clickhouse_session.path}",  # type: ignore[attr-defined]
    )
    running = AnalyticsServer(settings, create_analytics_app(settings, clickhouse_session))
    yield running
    running.stop()


@pytest.fixture
def story(
    funnel_server: AnalyticsServer, clickhouse: Client, redis_client: redis.Redis,
    redis_server: RedisServer,
) -> AnalyticsServer:
    """Three people click leaf's link; two register; one passes KYC, deposits 500 then 200 and
    trades 2.5 lots (revenue 10 + 2.5); the other deposits 100, reversed; a third user, never
    registered, deposits 50 (unattributed)."""
    clicks = [click_id_at(60_000 * i) for i in range(3)]
    insert_clicks(clickhouse, [
        click(TREE.leaf, at=DAY + timedelta(minutes=i), click_id=uuid.UUID(c), visitor_id=c,
              campaign="spring", country=("DE", "FR", "DE")[i], code=("L1", "L2", "L1")[i])
        for i, c in enumerate(clicks)
    ])
    insert_registrations(clickhouse, TREE.leaf, 1, at=DAY + timedelta(hours=1), user_id="1",
                         click_id=clicks[0], campaign="spring")
    insert_registrations(clickhouse, TREE.leaf, 1, at=DAY + timedelta(hours=1), user_id="2",
                         click_id=clicks[1], campaign="spring")
    hour = 3_600_000
    events: list[dict[str, Any]] = [
        {"eventId": "k1", "type": "kyc_approved", "ts": MS + 2 * hour, "userId": 1},
        {"eventId": "d1", "type": "deposit", "ts": MS + 3 * hour, "userId": 1, "amount": "500"},
        {"eventId": "d2", "type": "deposit", "ts": MS + 4 * hour, "userId": 1, "amount": "200"},
        {"eventId": "t1", "type": "trade", "ts": MS + 5 * hour, "userId": 1, "symbol": "EURUSD",
         "lots": "2.5", "commission": "10", "markup": "2.5"},
        {"eventId": "w1", "type": "withdrawal", "ts": MS + 6 * hour, "userId": 1,
         "amount": "80.10"},
        {"eventId": "d3", "type": "deposit", "ts": MS + 3 * hour, "userId": 2, "amount": "100"},
        {"eventId": "r3", "type": "reversal", "ts": MS + 7 * hour, "userId": 2, "reverses": "d3"},
        {"eventId": "d9", "type": "deposit", "ts": MS + 3 * hour, "userId": 9, "amount": "50"},
    ]
    funnel = Funnel(redis_server.url, clickhouse)
    funnel.post(*events)
    funnel.credit()
    return funnel_server


def test_the_summary_counts_the_money_worked_out_by_hand(story: AnalyticsServer) -> None:
    with story.admin() as http:
        body = http.get("/api/analytics/summary", params=RANGE).json()
    assert {k: body[k] for k in (
        "registrations", "kycApproved", "firstDeposits", "firstDepositAmount", "depositors",
        "depositAmount", "withdrawalAmount", "activeTraders", "lots", "brokerRevenue",
        "unattributedEvents",
    )} == {
        "registrations": 2, "kycApproved": 1, "firstDeposits": 1, "firstDepositAmount": "500.00",
        "depositors": 1, "depositAmount": "700.00", "withdrawalAmount": "80.10",
        "activeTraders": 1, "lots": "2.5", "brokerRevenue": "12.50", "unattributedEvents": 1,
    }


@pytest.mark.parametrize(("cohort", "counts"), [
    ("clicks", [3, 2, 1, 1, 1]), ("events", [3, 2, 1, 1, 1]),
])
def test_the_funnel_of_both_cohorts(
    story: AnalyticsServer, cohort: str, counts: list[int]
) -> None:
    with story.admin() as http:
        body = http.get("/api/analytics/funnel", params={**RANGE, "cohort": cohort}).json()
    assert [s["step"] for s in body["steps"]] == ["visitors", "registrations", "kyc", "ftd",
                                                  "active"]
    assert [s["count"] for s in body["steps"]] == counts
    assert [s["rate"] for s in body["steps"]] == [None, round(2 / 3, 4), 0.5, 1.0, 1.0]


def test_a_partner_sees_its_subtree_and_not_a_sibling(story: AnalyticsServer) -> None:
    with story.client(partner_token(story.settings, TREE.master)) as http:
        mine = http.get("/api/analytics/summary",
                        params={**RANGE, "includeDownline": "true"}).json()
    with story.client(partner_token(story.settings, TREE.other)) as http:
        theirs = http.get("/api/analytics/summary", params=RANGE).json()
    assert (mine["depositAmount"], mine["firstDeposits"]) == ("700.00", 1)
    assert "unattributedEvents" not in mine
    assert (theirs["depositAmount"], theirs["firstDeposits"]) == ("0.00", 0)


def test_breakdowns_and_series_carry_the_figures(story: AnalyticsServer) -> None:
    with story.admin() as http:
        by_country = http.get("/api/analytics/breakdown",
                              params={**RANGE, "by": "country"}).json()["rows"]
        by_partner = http.get("/api/analytics/breakdown",
                              params={**RANGE, "by": "partner"}).json()["rows"]
        series = http.get("/api/analytics/timeseries",
                          params={**RANGE, "interval": "day"}).json()["points"]
    assert {row["key"]: row["depositAmount"] for row in by_country} == {"DE": "700.00",
                                                                        "FR": "0.00"}
    assert {row["key"]: row["lots"] for row in by_partner} == {TREE.leaf: "2.5"}
    assert [p["depositAmount"] for p in series] == ["700.00", "0.00", "0.00"]


def test_an_unknown_cohort_is_a_422(story: AnalyticsServer) -> None:
    with story.admin() as http:
        response = http.get("/api/analytics/funnel", params={"cohort": "users"})
    assert response.status_code == 422
