"""The SSO hooks as the broker's backend calls them, against a real edge and the fake cTrader."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from edge.hotpath.attribution import Attribution, AttributionCodec
from edge.sso.notify import verify
from tests.conftest import ADMIN_TOKEN, EdgeServer, stream_events, wait_for
from tests.edge.helpers import create_link, put_partner
from tests.edge.hotpath.test_clicks import CHROME
from tests.edge.sso.hooks_support import (
    WebhookReceiver,
    call_hook,
    conversions,
    start_hook_edge,
)
from tests.fake_ctrader import FakeCTrader

pytestmark = pytest.mark.servers
REFERRAL = "/hooks/sso/referral"
USERS = "/hooks/sso/users"
WEBHOOK = "/hooks/ctrader/attribution"


@pytest.fixture
def hook_edge(edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader) -> EdgeServer:
    edge = start_hook_edge(edge_factory, fake_ctrader)
    put_partner(edge, "master", type="ib")
    put_partner(edge, "ib-7", type="ib", parentPartnerId="master")
    return edge


def signed_token(edge: EdgeServer, partner_id: str, click_id: str, **changes: Any) -> str:
    now = int(time.time() * 1000)
    fields = {"partner_id": partner_id, "campaign": "spring", "click_id": click_id,
              "visitor_id": click_id, "clicked_at_ms": now, "expires_at_ms": now + 60_000}
    fields.update(changes)
    codec = AttributionCodec(edge.settings.edge, edge.settings.secrets)
    return codec.encode(Attribution(**fields))


def test_referral_with_partner_id_is_assigned_in_ctrader(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader
) -> None:
    user_id = fake_ctrader.add_user()
    response = call_hook(hook_edge, REFERRAL, {"userId": user_id, "partnerId": "ib-7"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "userId": user_id, "ctidTraderAccountId": None, "partnerId": "ib-7", "clickId": None,
        "assignment": "done", "duplicate": False,
    }
    assert fake_ctrader.referrals[user_id] == "ib-7"
    [put] = fake_ctrader.assignments()
    assert put.body == {"brokerCrmName": "test-broker", "partnerId": "ib-7", "userId": user_id}


def test_attributed_registration_becomes_one_conversion_event(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader, redis_client: redis.Redis
) -> None:
    user_id = fake_ctrader.add_user()
    token = signed_token(hook_edge, "ib-7", "0190a0b4-1c2d-7e3f-8a4b-5c6d7e8f9a0b")
    assert call_hook(hook_edge, REFERRAL, {"userId": user_id, "token": token}).status_code == 200
    [event] = conversions(redis_client)
    assert event == {
        "event_id": f"registration:{user_id}", "event_type": "registration", "ts": event["ts"],
        "user_id": str(user_id), "ctid_trader_account_id": "",
        "click_id": "0190a0b4-1c2d-7e3f-8a4b-5c6d7e8f9a0b", "partner_id": "ib-7",
        "ancestors": ["master"], "campaign": "spring", "source": "sso_referral",
    }
    assert abs(event["ts"] - time.time() * 1000) < 60_000


def test_referral_by_trading_account(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader, redis_client: redis.Redis
) -> None:
    user_id = fake_ctrader.add_user()
    account = fake_ctrader.add_account(user_id)
    response = call_hook(hook_edge, REFERRAL, {"ctidTraderAccountId": str(account),
                                               "partnerId": "ib-7"})
    assert response.json()["assignment"] == "done"
    assert fake_ctrader.referrals[user_id] == "ib-7"
    [event] = conversions(redis_client)
    assert event["event_id"] == f"registration:account:{account}"
    assert event["ctid_trader_account_id"] == str(account)
    assert event["user_id"] == ""


def test_click_id_is_found_in_the_click_stream(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader, redis_client: redis.Redis
) -> None:
    link = create_link(hook_edge, "ib-7", campaign="launch")
    with hook_edge.client() as client:
        location = client.get(f"/r/{link['code']}", headers={"User-Agent": CHROME}).headers[
            "location"
        ]
    click_id = location.split("clickId=")[1].split("&")[0]
    wait_for(lambda: len(stream_events(redis_client)) == 1, what="the click in the stream")
    user_id = fake_ctrader.add_user()
    response = call_hook(hook_edge, REFERRAL, {"userId": user_id, "clickId": click_id})
    assert response.status_code == 200, response.text
    assert response.json()["partnerId"] == "ib-7"
    [event] = conversions(redis_client)
    assert (event["click_id"], event["campaign"]) == (click_id, "launch")


def test_bare_click_id_not_in_the_stream_is_refused(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader
) -> None:
    click_id = _recent_uuid7()
    response = call_hook(hook_edge, REFERRAL, {"userId": 1, "clickId": click_id})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_attribution"
    assert "token" in response.json()["error"]["message"]
    assert fake_ctrader.assignments() == []


def test_click_id_with_partner_id_is_taken_when_no_longer_in_the_stream(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader, redis_client: redis.Redis
) -> None:
    user_id = fake_ctrader.add_user()
    click_id = _recent_uuid7()
    response = call_hook(hook_edge, REFERRAL,
                         {"userId": user_id, "clickId": click_id, "partnerId": "ib-7"})
    assert response.status_code == 200, response.text
    assert conversions(redis_client)[0]["click_id"] == click_id


@pytest.mark.parametrize(("body", "code"), [
    ({"token": "eyJwIjoiaWItNyJ9.forgedsignature"}, "invalid_attribution"),
    ({"clickId": "not-a-uuid"}, "invalid_attribution"),
    ({"clickId": "0190a0b4-1c2d-4e3f-8a4b-5c6d7e8f9a0b", "partnerId": "ib-7"},
     "invalid_attribution"),
    ({"partnerId": "nobody"}, "unknown_partner"),
    ({"partnerId": "bad id!"}, "invalid_input"),
    ({}, "invalid_input"),
], ids=["forged-token", "click-not-uuid", "click-not-v7", "unknown-partner", "bad-partner-id",
        "no-attribution"])
def test_unverifiable_attribution_is_refused(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader, redis_client: redis.Redis,
    body: dict[str, Any], code: str,
) -> None:
    response = call_hook(hook_edge, REFERRAL, {"userId": 5, **body})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert fake_ctrader.assignments() == []
    assert conversions(redis_client) == []


def test_token_of_another_partner_than_the_partner_id_is_refused(hook_edge: EdgeServer) -> None:
    token = signed_token(hook_edge, "ib-7", _recent_uuid7())
    response = call_hook(hook_edge, REFERRAL, {"userId": 5, "token": token, "partnerId": "master"})
    assert response.status_code == 422
    assert "differs" in response.json()["error"]["message"]


def test_expired_token_is_refused(hook_edge: EdgeServer) -> None:
    token = signed_token(hook_edge, "ib-7", _recent_uuid7(), expires_at_ms=1000)
    response = call_hook(hook_edge, REFERRAL, {"userId": 5, "token": token})
    assert response.json()["error"]["code"] == "invalid_attribution"


def test_suspended_partner_is_not_credited(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader
) -> None:
    put_partner(hook_edge, "ib-7", status="suspended")
    response = call_hook(hook_edge, REFERRAL, {"userId": 5, "partnerId": "ib-7"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "partner_suspended"
    assert fake_ctrader.assignments() == []


@pytest.mark.parametrize(("body", "status", "fragment"), [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    ({"partnerId": "ib-7"}, 422, "userId or ctidTraderAccountId is required"),
    ({"userId": 1, "ctidTraderAccountId": 2, "partnerId": "ib-7"}, 422, "not both"),
    ({"userId": "12a", "partnerId": "ib-7"}, 422, "positive whole number"),
    ({"userId": True, "partnerId": "ib-7"}, 422, "positive whole number"),
    ({"userId": -3, "partnerId": "ib-7"}, 422, "positive whole number"),
    ({"userId": 1, "partnerId": 7}, 422, "partnerId must be"),
    ({"userId": 1, "partnerId": "ib-7", "partnerID": "x"}, 422, "unknown field"),
    (b"{" + b'"a": "' + b"x" * 70_000 + b'"}', 413, "larger than"),
], ids=["malformed", "not-object", "no-user", "two-users", "bad-digits", "bool", "negative",
        "partner-not-string", "unknown-field", "oversize"])
def test_bad_hook_bodies_get_a_clear_4xx(
    hook_edge: EdgeServer, body: Any, status: int, fragment: str
) -> None:
    response = call_hook(hook_edge, REFERRAL, body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]["message"]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    {"Authorization": "Basic abc"},
], ids=["missing", "wrong", "admin-token", "basic"])
def test_hooks_need_the_hook_token(hook_edge: EdgeServer, headers: dict[str, str]) -> None:
    for path in (REFERRAL, USERS):
        response = call_hook(hook_edge, path, {"userId": 1, "partnerId": "ib-7"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_duplicate_hook_calls_assign_and_count_once(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader, redis_client: redis.Redis
) -> None:
    user_id = fake_ctrader.add_user()
    answers = [call_hook(hook_edge, REFERRAL, {"userId": user_id, "partnerId": "ib-7"}).json()
               for _ in range(3)]
    assert [answer["assignment"] for answer in answers] == ["done"] * 3
    assert [answer["duplicate"] for answer in answers] == [False, True, True]
    assert len(fake_ctrader.assignments()) == 1
    assert len(conversions(redis_client)) == 1


def test_transient_ctrader_failures_are_retried_within_the_request(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader
) -> None:
    user_id = fake_ctrader.add_user()
    fake_ctrader.fail("500")
    fake_ctrader.fail("rate_limit")
    response = call_hook(hook_edge, REFERRAL, {"userId": user_id, "partnerId": "ib-7"})
    assert response.json()["assignment"] == "done"
    assert len(fake_ctrader.assignments()) == 3


def test_ctrader_down_answers_queued_and_the_worker_delivers_later(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader, redis_client: redis.Redis
) -> None:
    user_id = fake_ctrader.add_user()
    fake_ctrader.down = True
    response = call_hook(hook_edge, REFERRAL, {"userId": user_id, "partnerId": "ib-7"})
    assert response.json()["assignment"] == "queued"
    assert len(conversions(redis_client)) == 1  # attributed, even while cTrader is down
    fake_ctrader.down = False
    wait_for(lambda: fake_ctrader.referrals.get(user_id) == "ib-7", what="the queued assignment")
    again = call_hook(hook_edge, REFERRAL, {"userId": user_id, "partnerId": "ib-7"}).json()
    assert again["assignment"] == "done"
    assert again["duplicate"]


def test_expired_manager_token_is_renewed_during_a_hook(
    edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader
) -> None:
    edge = start_hook_edge(edge_factory, fake_ctrader, INVITE_CTRADER_TOKEN="",
                           INVITE_CTRADER_MANAGER_LOGIN="1001",
                           INVITE_CTRADER_MANAGER_PASSWORD="manager-password")
    put_partner(edge, "ib-7")
    first, second = fake_ctrader.add_user(), fake_ctrader.add_user()
    assert call_hook(edge, REFERRAL, {"userId": first, "partnerId": "ib-7"}).status_code == 200
    fake_ctrader.expire_tokens()
    answer = call_hook(edge, REFERRAL, {"userId": second, "partnerId": "ib-7"}).json()
    assert answer["assignment"] == "done"
    assert len(fake_ctrader.calls_to("POST", "/v2/webserv/managers/token")) == 2


def test_ctrader_refusal_is_final_and_a_visible_dead_letter(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader
) -> None:
    response = call_hook(hook_edge, REFERRAL, {"userId": 424242, "partnerId": "ib-7"})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "ctrader_rejected"
    assert "INVALID_REQUEST" in response.json()["error"]["message"]
    assert len(fake_ctrader.assignments()) == 1
    with hook_edge.admin() as admin:
        letters = admin.get("/api/ctrader/dead-letters").json()
    [letter] = letters["deadLetters"]
    assert letter["key"] == "assign:u:424242:ib-7"
    assert letter["error"]["errorCode"] == "INVALID_REQUEST"
    assert letter["error"]["description"] == "user not found"
    assert letter["job"]["partnerId"] == "ib-7"
    assert letters["queued"] == 0


def test_users_hook_creates_the_user_and_assigns_the_partner(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader, redis_client: redis.Redis
) -> None:
    body = {"email": "new@example.test", "preferredLanguage": "en", "firstName": "Ann",
            "partnerId": "ib-7"}
    response = call_hook(hook_edge, USERS, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    user_id = answer["userId"]
    assert (answer["partnerId"], answer["assignment"]) == ("ib-7", "done")
    assert fake_ctrader.users[user_id]["email"] == "new@example.test"
    assert fake_ctrader.referrals[user_id] == "ib-7"
    [create] = fake_ctrader.calls_to("POST", "/cid/oauth2/ctid/create")
    assert create.body == {"brokerCrmName": "test-broker", "email": "new@example.test",
                           "preferredLanguage": "en", "firstName": "Ann"}
    [event] = conversions(redis_client)
    assert (event["user_id"], event["source"]) == (str(user_id), "sso_users")
    repeated = call_hook(hook_edge, USERS, body).json()
    assert repeated["userId"] == user_id and repeated["duplicate"]
    assert len(fake_ctrader.calls_to("POST", "/cid/oauth2/ctid/create")) == 1


def test_users_hook_called_twice_at_once_creates_one_user(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader
) -> None:
    fake_ctrader.delay_s = 0.5  # both calls arrive while the first create is on its way
    body = {"email": "twice@example.test", "partnerId": "ib-7"}
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: call_hook(hook_edge, USERS, body), range(2)))

    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json()["userId"] == answers[1].json()["userId"]
    assert len(fake_ctrader.calls_to("POST", "/cid/oauth2/ctid/create")) == 1
    assert len(fake_ctrader.assignments()) == 1


def test_users_hook_without_attribution_creates_an_unattributed_user(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader, redis_client: redis.Redis
) -> None:
    answer = call_hook(hook_edge, USERS, {"email": "solo@example.test"}).json()
    assert answer["partnerId"] is None and answer["assignment"] == "none"
    assert fake_ctrader.assignments() == []
    assert conversions(redis_client) == []


def test_users_hook_refuses_a_forged_token_before_creating_anyone(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader
) -> None:
    response = call_hook(hook_edge, USERS, {"email": "x@example.test", "token": "a.b"})
    assert response.status_code == 422
    assert fake_ctrader.calls_to("POST", "/cid/oauth2/ctid/create") == []


def test_users_hook_without_ctrader_says_what_to_set(
    edge_factory: Callable[..., EdgeServer],
) -> None:
    edge = edge_factory()
    response = call_hook(edge, USERS, {"email": "x@example.test"})
    assert response.status_code == 503
    assert "INVITE_CTRADER_URL" in response.json()["error"]["message"]


def test_users_hook_needs_an_email(hook_edge: EdgeServer) -> None:
    for body in ({}, {"email": "no-at-sign"}, {"email": 5}):
        assert call_hook(hook_edge, USERS, body).status_code == 422


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def webhook_edge(edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader) -> EdgeServer:
    edge = start_hook_edge(edge_factory, fake_ctrader, INVITE_CTRADER_WEBHOOK_USER="ctrader",
                           INVITE_CTRADER_WEBHOOK_PASSWORD="webhook-password-123")
    put_partner(edge, "master", type="ib")
    put_partner(edge, "trader-1", parentPartnerId="master", ctidUserId=900001)
    put_partner(edge, "trader-2", ctidUserId=900002)
    return edge


def _invited(edge: EdgeServer, body: dict[str, Any], **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", _basic("ctrader", "webhook-password-123"))
    return call_hook(edge, WEBHOOK, {"brokerName": "test-broker", **body}, headers=headers)


def test_ctrader_webhook_maps_the_inviter_and_records_the_conversion(
    webhook_edge: EdgeServer, redis_client: redis.Redis
) -> None:
    first = _invited(webhook_edge, {"invitedUserId": 77, "partnerUserId": 900001})
    assert first.json() == {"brokerPartnerId": "trader-1", "brokerResult": "ATTRIBUTED_NEW"}
    again = _invited(webhook_edge, {"invitedUserId": 77, "partnerUserId": 900001})
    assert again.json()["brokerResult"] == "ATTRIBUTED"
    moved = _invited(webhook_edge, {"invitedUserId": 77, "partnerUserId": 900002})
    assert moved.json() == {"brokerPartnerId": "trader-2", "brokerResult": "REATTRIBUTED"}
    registration, reattribution = conversions(redis_client)
    assert registration["event_id"] == "registration:77"
    assert registration["ancestors"] == ["master"]
    assert registration["source"] == "ctrader_webhook"
    assert reattribution["event_type"] == "reattribution"
    assert reattribution["partner_id"] == "trader-2"


def test_ctrader_webhook_takes_a_known_broker_partner_id(webhook_edge: EdgeServer) -> None:
    answer = _invited(webhook_edge, {"invitedUserId": 78, "partnerUserId": 1,
                                     "brokerPartnerId": "master"}).json()
    assert answer == {"brokerPartnerId": "master", "brokerResult": "ATTRIBUTED_NEW"}


def test_ctrader_webhook_with_an_unknown_inviter_is_pending(
    webhook_edge: EdgeServer, redis_client: redis.Redis
) -> None:
    answer = _invited(webhook_edge, {"invitedUserId": 79, "partnerUserId": 123}).json()
    assert answer == {"brokerPartnerId": None, "brokerResult": "PENDING_ATTRIBUTION"}
    assert conversions(redis_client) == []


@pytest.mark.parametrize("headers", [
    {}, _basic("ctrader", "wrong"), _basic("other", "webhook-password-123"),
    {"Authorization": "Basic !!!"},
], ids=["missing", "wrong-password", "wrong-user", "garbage"])
def test_ctrader_webhook_needs_its_basic_credentials(
    webhook_edge: EdgeServer, headers: dict[str, str]
) -> None:
    response = _invited(webhook_edge, {"invitedUserId": 1, "partnerUserId": 900001},
                        headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


def test_ctrader_webhook_refuses_bad_bodies(webhook_edge: EdgeServer) -> None:
    for body in ({"partnerUserId": 1}, {"invitedUserId": 1, "partnerUserId": "x"},
                 {"invitedUserId": 1, "partnerUserId": 2, "brokerName": "other"}):
        assert _invited(webhook_edge, body).status_code == 422


def test_ctrader_webhook_is_disabled_without_credentials(hook_edge: EdgeServer) -> None:
    response = call_hook(hook_edge, WEBHOOK, {}, headers=_basic("a", "b"))
    assert response.status_code == 404
    assert "INVITE_CTRADER_WEBHOOK_USER" in response.json()["error"]["message"]


def test_partner_is_notified_with_a_signature_it_can_verify(
    hook_edge: EdgeServer, fake_ctrader: FakeCTrader
) -> None:
    user_id = fake_ctrader.add_user()
    with WebhookReceiver(failures=1) as receiver:
        put_partner(hook_edge, "ib-7", webhookUrl=receiver.url)
        call_hook(hook_edge, REFERRAL, {"userId": user_id, "partnerId": "ib-7",
                                        "clickId": _recent_uuid7()})
        wait_for(lambda: len(receiver.received) == 1, what="the partner's notification")
    with hook_edge.admin() as admin:
        webhook = admin.get("/api/partners/ib-7/webhook").json()
    headers, body = receiver.received[0]
    assert webhook["signatureHeader"] == "X-Invite-Signature"
    assert verify(webhook["secret"], body, headers["x-invite-signature"])
    assert not verify(webhook["secret"], body + b" ", headers["x-invite-signature"])
    assert not verify("another-partners-secret", body, headers["x-invite-signature"])
    assert headers["x-invite-event-id"] == f"registration:{user_id}"


@pytest.mark.parametrize("url", ["ftp://partner.test/hook", "https://user:pw@partner.test/",
                                 "partner.test/hook", "https://partner test/"])
def test_partner_webhook_url_must_be_http(hook_edge: EdgeServer, url: str) -> None:
    with hook_edge.admin() as admin:
        response = admin.put("/api/partners/ib-7", json={"webhookUrl": url})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("webhookUrl")


def _recent_uuid7() -> str:
    import uuid_utils

    return str(uuid_utils.uuid7())
