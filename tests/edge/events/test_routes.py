"""`POST /api/events` as the broker's back office calls it: batches all or nothing, every fault
named by index and field, duplicates no-ops however old, reversals checked, bodies bounded."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
import redis

from tests.conftest import EdgeServer, Tracebacks

pytestmark = pytest.mark.servers

EVENTS_TOKEN = "events-token-for-tests-0123456789"
NOW = int(time.time() * 1000)


@pytest.fixture
def edge(edge_factory: Any) -> EdgeServer:
    server: EdgeServer = edge_factory(INVITE_EVENTS_TOKEN=EVENTS_TOKEN)
    return server


def post(edge: EdgeServer, events: Any, *, ndjson: bool = False,
         token: str = EVENTS_TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    with edge.client() as client:
        if ndjson:
            body = b"\n".join(orjson.dumps(e) for e in events)
            return client.post("/api/events", content=body,
                               headers={**headers, "Content-Type": "application/x-ndjson"})
        return client.post("/api/events", json={"events": events}, headers=headers)


def deposit(event_id: str, amount: Any = "100.25", **more: Any) -> dict[str, Any]:
    return {"eventId": event_id, "type": "deposit", "ts": NOW - 1000, "userId": 42,
            "amount": amount, **more}


def stream(client: redis.Redis) -> list[dict[str, Any]]:
    return [orjson.loads(f[b"e"]) for _, f in client.xrange("invite:{events}")]


def test_a_batch_goes_to_the_stream_in_the_streams_form(
    edge: EdgeServer, redis_client: redis.Redis, tracebacks: Tracebacks
) -> None:
    trade = {"eventId": "t-1", "type": "trade", "ts": "2026-01-05T10:00:00+01:00",
             "ctidTraderAccountId": "9001", "symbol": "XAUUSD", "lots": 0.1,
             "commission": "3", "markup": 1.25, "positionId": 77}
    response = post(edge, [deposit("d-1"), trade])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "duplicates": 0}
    first, second = stream(redis_client)
    assert (first["event_id"], first["amount"], first["user_id"]) == ("d-1", "100.25", "42")
    assert (second["lots"], second["markup"], second["ts"]) == ("0.1", "1.25", "1767603600000")
    assert second["position_id"] == "77" and second["ctid_trader_account_id"] == "9001"


def test_ndjson_is_taken_too(edge: EdgeServer, redis_client: redis.Redis) -> None:
    response = post(edge, [deposit("n-1"), deposit("n-2")], ndjson=True)
    assert response.json() == {"accepted": 2, "duplicates": 0}


def test_a_repeated_event_id_is_a_no_op_counted_as_a_duplicate(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    post(edge, [deposit("once")])
    again = post(edge, [deposit("once", amount="999"), deposit("new")])
    assert again.json() == {"accepted": 1, "duplicates": 1}
    assert [e["event_id"] for e in stream(redis_client)] == ["once", "new"]


@pytest.mark.parametrize(("event", "field", "words"), [
    (deposit("x", amount=-5), "amount", "greater than 0"),
    (deposit("x", amount=0), "amount", "greater than 0"),
    (deposit("x", amount="1.123456789"), "amount", "decimals"),
    (deposit("x", amount="１０"), "amount", "ASCII"),
    (deposit("x", userId="²"), "userId", "ASCII"),
    (deposit("x", ts=NOW + 3_600_000), "ts", "5 minutes"),
    (deposit("x", ts="2026-01-01T00:00:00"), "ts", "zone"),
    (deposit("x", ts=True), "ts", "ISO 8601"),
    (deposit("x", color="red"), "color", "not a field"),
    ({"eventId": "x", "type": "payout", "ts": NOW, "userId": 1}, "type", "one of"),
    ({"eventId": "", "type": "kyc_approved", "ts": NOW, "userId": 1}, "eventId", "printable"),
    ({"eventId": "k", "type": "kyc_approved", "ts": NOW, "ctidTraderAccountId": 1}, "userId",
     "required"),
    ({"eventId": "a", "type": "account_opened", "ts": NOW, "userId": 1}, "ctidTraderAccountId",
     "both"),
    ({"eventId": "t", "type": "trade", "ts": NOW, "userId": 1, "symbol": "EURUSD", "lots": "1",
      "commission": "-1", "markup": "0"}, "commission", "negative"),
    ({"eventId": "r", "type": "reversal", "ts": NOW, "userId": 1, "reverses": "r"}, "reverses",
     "itself"),
])
def test_a_bad_event_refuses_the_whole_batch_naming_index_and_field(
    edge: EdgeServer, redis_client: redis.Redis, tracebacks: Tracebacks,
    event: dict[str, Any], field: str, words: str,
) -> None:
    response = post(edge, [deposit("fine"), event])
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_events"
    assert any(d["index"] == 1 and d["field"] == field and words in d["message"]
               for d in error["details"]), error
    assert stream(redis_client) == []  # all or nothing


def test_a_reversal_must_point_at_a_deposit_or_trade_not_reversed_yet(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    post(edge, [deposit("d-1"), {"eventId": "k-1", "type": "kyc_approved", "ts": NOW,
                                 "userId": 42}])

    def reversal(event_id: str, target: str) -> dict[str, Any]:
        return {"eventId": event_id, "type": "reversal", "ts": NOW, "userId": 42,
                "reverses": target}

    unknown = post(edge, [reversal("r-0", "nope")])
    wrong_kind = post(edge, [reversal("r-0", "k-1")])
    first = post(edge, [reversal("r-1", "d-1")])
    twice = post(edge, [reversal("r-2", "d-1")])
    repeated = post(edge, [reversal("r-1", "d-1")])
    assert [r.status_code for r in (unknown, wrong_kind, first, twice, repeated)] == [
        422, 422, 200, 422, 200]
    assert "never accepted" in unknown.json()["error"]["details"][0]["message"]
    assert "neither a deposit nor a trade" in wrong_kind.json()["error"]["message"]
    assert "already reversed" in twice.json()["error"]["message"]
    assert repeated.json() == {"accepted": 0, "duplicates": 1}


@pytest.mark.parametrize("count", [0, 1001])
def test_a_batch_holds_1_to_1000_events(edge: EdgeServer, count: int) -> None:
    response = post(edge, [deposit(f"e-{i}") for i in range(count)])
    assert response.status_code == 422
    assert "1 to 1000" in response.json()["error"]["message"]


def test_the_events_token_is_required_and_no_other_does(edge: EdgeServer) -> None:
    assert post(edge, [deposit("x")], token="wrong").status_code == 401
    assert post(edge, [deposit("x")], token="admin-token-for-tests-0123456789").status_code == 401


def test_a_body_past_1_mib_is_refused_while_read(edge: EdgeServer) -> None:
    events = [deposit(f"e-{i}", note="x" * 2000) for i in range(600)]
    response = post(edge, events)
    assert response.status_code == 413
