"""Erasing a person: their raw rows go from the streams, the dead letters and ClickHouse; the
views keep their counts; nobody else's rows are touched."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import registration_codes
from analytics.api import create_analytics_app
from analytics.clickhouse import Client
from analytics.events.schema import ROLLUP_TABLES as EVENT_ROLLUP_TABLES
from edge.config import Settings
from tests.analytics.conftest import add_events, click_event
from tests.analytics.fixtures_api import TREE, click, insert_clicks, insert_registrations
from tests.analytics.test_api import AnalyticsServer, partner_token
from tests.conftest import RedisServer, Tracebacks, make_settings

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def privacy_server(
    clickhouse_session: Client, redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AnalyticsServer]:
    settings: Settings = make_settings(
        tmp_path_factory.mktemp("privacy"), redis_server.url, INVITE_BATCHER_FLUSH_MS="50",
        INVITE_CLICKHOUSE_URL=f"chdb://{clickhouse_session.path}",  # type: ignore[attr-defined]
    )
    running = AnalyticsServer(settings, create_analytics_app(settings, clickhouse_session))
    yield running
    running.stop()


@pytest.fixture
def api(
    privacy_server: AnalyticsServer, clickhouse: Client, redis_client: redis.Redis
) -> AnalyticsServer:
    return privacy_server


def clicks_of(clickhouse: Client, column: str, value: str) -> int:
    return int(clickhouse.query(
        f"SELECT count() FROM invite.clicks WHERE toString({column}) = {{v:String}}",  # noqa: S608
        parameters={"v": value},
    ).result_rows[0][0])


def view_clicks(clickhouse: Client) -> int:
    return int(clickhouse.command("SELECT sum(clicks) FROM invite.clicks_totals_daily"))  # type: ignore[arg-type]


def stream_values(client: redis.Redis, stream: str, field: str) -> list[Any]:
    values = []
    for _, fields in client.xrange(stream):
        try:
            values.append(orjson.loads(fields[b"e"]).get(field))
        except orjson.JSONDecodeError:
            values.append(fields[b"e"].decode())
    return values


def test_erasing_a_visitor_removes_its_clicks_everywhere_and_keeps_the_counts(
    api: AnalyticsServer, clickhouse: Client, redis_client: redis.Redis
) -> None:
    visitor = str(uuid.uuid4())
    insert_clicks(clickhouse, [click(visitor_id=visitor), click(visitor_id=visitor),
                               click(TREE.leaf)])
    add_events(redis_client, [click_event(visitor_id=visitor), click_event()])
    redis_client.xadd("invite:clicks:dead", {"e": f'{{"visitor_id": "{visitor}", oops'})
    before = view_clicks(clickhouse)
    with api.admin() as http:
        response = http.delete(f"/api/privacy/visitors/{visitor}")
    assert response.status_code == 200, response.text
    assert response.json() == {"visitorId": visitor, "erased": {
        "redis:invite:clicks": 1, "redis:invite:clicks:dead": 1, "clickhouse:clicks": 2,
    }}
    assert clicks_of(clickhouse, "visitor_id", visitor) == 0
    assert int(clickhouse.command("SELECT count() FROM invite.clicks")) == 1  # type: ignore[arg-type]
    assert visitor not in stream_values(redis_client, "invite:clicks", "visitor_id")
    assert redis_client.xlen("invite:clicks") == 1
    assert redis_client.xlen("invite:clicks:dead") == 0
    assert view_clicks(clickhouse) == before  # aggregated counts stay, without identities


def test_erasing_a_user_removes_registrations_their_clicks_and_the_visitor(
    api: AnalyticsServer, clickhouse: Client, redis_client: redis.Redis
) -> None:
    visitor = str(uuid.uuid4())
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    insert_clicks(clickhouse, [click(click_id=uuid.UUID(first), visitor_id=visitor),
                               click(click_id=uuid.UUID(second), visitor_id=visitor),
                               click(TREE.other)])
    insert_registrations(clickhouse, TREE.sub, 1, user_id="4711", click_id=first)
    insert_registrations(clickhouse, TREE.sub, 1, user_id="4712")
    clickhouse.command(registration_codes.fill_statement("1"))  # as the batcher stores them
    assert clickhouse.command(
        "SELECT count() FROM invite.registration_codes FINAL WHERE code != ''") == 1
    redis_client.xadd("invite:conversions", {"e": orjson.dumps({"user_id": "4711"})})
    redis_client.xadd("invite:conversions", {"e": orjson.dumps({"user_id": "4712"})})
    redis_client.xadd("invite:{outbox}:dead", {"e": orjson.dumps(
        {"job": {"userId": 4711, "conversion": {"user_id": "4711"}}}
    )})
    redis_client.hset("invite:{outbox}:job:assign:u:4711:ib-sub", "state", "done")
    redis_client.set("invite:{outbox}:user:4711", "ib-sub")
    with api.admin() as http:
        response = http.delete("/api/privacy/users/4711")
    assert response.status_code == 200, response.text
    erased = response.json()["erased"]
    assert erased["clickhouse:conversions"] == 1
    assert erased["clickhouse:clicks"] == 2  # the registration's click and its visitor's other
    # Its registration as the view wrote it, and again with its click's code.
    assert erased["clickhouse:registration_codes"] == 2
    assert erased["redis:invite:conversions"] == 1
    assert erased["redis:invite:{outbox}:dead"] == 1
    assert erased["redis:outbox state"] == 2
    assert clicks_of(clickhouse, "visitor_id", visitor) == 0
    left = clickhouse.query("SELECT user_id FROM invite.conversions").result_rows
    assert left == [("4712",)]
    assert clickhouse.query("SELECT event_id FROM invite.registration_codes").result_rows == [
        clickhouse.query("SELECT event_id FROM invite.conversions").result_rows[0]]
    assert stream_values(redis_client, "invite:conversions", "user_id") == ["4712"]
    assert not redis_client.exists("invite:{outbox}:user:4711")


def test_erasing_a_user_removes_its_funnel_events_and_unnames_its_commission_lines(
    api: AnalyticsServer, clickhouse: Client, redis_client: redis.Redis
) -> None:
    for user in ("4711", "4712"):
        row = {"user": user, "event": f"dep-{user}", "line": f"line-{user}"}
        clickhouse.command(
            "INSERT INTO invite.events (event_id, event_type, ts, user_id) VALUES "
            "({event:String}, 'deposit', now64(3), {user:String})", parameters=row)
        clickhouse.command(
            "INSERT INTO invite.events_credited (event_id, event_type, ts, user_id, partner_id, "
            "sign) VALUES ({event:String}, 'deposit', now64(3), {user:String}, 'ib-1', 1)",
            parameters=row)
        clickhouse.command(
            "INSERT INTO invite.commissions (line_id, period, user_id, partner_id, kind, amount) "
            "VALUES ({line:String}, '2026-11', {user:String}, 'ib-1', 'cpa', 250)",
            parameters=row)
    redis_client.xadd("invite:{events}", {"e": orjson.dumps({"user_id": "4711"})})
    with api.admin() as http:
        response = http.delete("/api/privacy/users/4711")
    assert response.status_code == 200, response.text
    erased = response.json()["erased"]
    assert erased["clickhouse:events"] == erased["clickhouse:events_credited"] == 1
    # The funnel's views held a row of each: the person's is gone, the other's figures stay.
    for table in EVENT_ROLLUP_TABLES:
        assert erased[f"clickhouse:{table}"] == 1, table
        left = clickhouse.query(f"SELECT user_id FROM invite.{table}").result_rows  # noqa: S608
        assert left == [("4712",)], table
    assert erased["clickhouse:commissions (user id removed)"] == 1
    assert erased["redis:invite:{events}"] == 1
    assert clickhouse.query("SELECT user_id FROM invite.events").result_rows == [("4712",)]
    lines = clickhouse.query(
        "SELECT line_id, user_id, amount FROM invite.commissions ORDER BY line_id").result_rows
    assert [(line, user, str(amount)) for line, user, amount in lines] == [
        ("line-4711", "", "250.00"), ("line-4712", "4712", "250.00")]


@pytest.mark.parametrize(("path", "status"), [
    ("/api/privacy/users/²", 422), ("/api/privacy/users/0", 422),
    ("/api/privacy/users/-1", 422), ("/api/privacy/visitors/%20", 422),
    ("/api/privacy/visitors/" + "v" * 129, 422),
])
def test_bad_ids_are_refused_by_name(api: AnalyticsServer, path: str, status: int) -> None:
    with api.admin() as http:
        response = http.delete(path)
    assert response.status_code == status, response.text


def test_a_partner_token_may_not_erase(api: AnalyticsServer) -> None:
    with api.client(partner_token(api.settings, TREE.sub)) as http:
        assert http.delete(f"/api/privacy/visitors/{uuid.uuid4()}").status_code == 403
        assert http.delete("/api/privacy/users/1").status_code == 403
    with api.client(None) as http:
        assert http.delete("/api/privacy/users/1").status_code == 401


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(kind=st.sampled_from(["visitors", "users"]),
       identity=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                        min_size=1, max_size=40))
def test_no_generated_erasure_gets_a_5xx_or_logs_a_traceback(
    api: AnalyticsServer, tracebacks: Tracebacks, kind: str, identity: str
) -> None:
    with api.admin() as http:
        response = http.delete(f"/api/privacy/{kind}/{quote(identity, safe='')}")
    assert response.status_code < 500, response.text[:300]
