"""The edge's answers on the paths generated requests seldom reach (a person's click and its
cookie, a verified token, the SSO hooks and cTrader's webhook crediting someone, accepted funnel
events) are the ones its /openapi.json describes: status, content type and body."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.core.failures import FailureGroup

from tests.conftest import ADMIN_TOKEN, HOOK_TOKEN, EdgeServer, ctrader_env
from tests.edge.hotpath.test_clicks import CHROME
from tests.fake_ctrader import FakeCTrader

pytestmark = pytest.mark.servers

EVENTS_TOKEN = "events-token-for-tests-0123456789"
WEBHOOK = ("ctrader-webhook", "webhook-password-for-tests")


class Described:
    """Checks each answer against the operation of the description that it answers."""

    def __init__(self, edge: EdgeServer) -> None:
        self.schema = schemathesis.openapi.from_url(f"{edge.url}/openapi.json")

    def __call__(self, response: httpx.Response, status: int) -> dict[str, Any]:
        request = response.request
        assert response.status_code == status, response.text
        operation = self.schema.find_operation_by_path(request.method, request.url.path)
        assert operation is not None, f"{request.method} {request.url.path} is not described"
        answers = operation.definition.raw["responses"]
        assert str(status) in answers, f"{operation.label} does not describe {status}"
        media = response.headers.get("content-type", "").split(";")[0]
        assert media in answers[str(status)].get("content", {media: None}), operation.label
        try:
            operation.validate_response(response)
        except FailureGroup as failure:
            raise AssertionError(f"{operation.label}: {failure}") from None
        return response.json() if media == "application/json" else {}


@pytest.fixture
def edge_and_fake(
    edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader
) -> tuple[EdgeServer, FakeCTrader]:
    edge = edge_factory(**ctrader_env(fake_ctrader), INVITE_EVENTS_TOKEN=EVENTS_TOKEN,
                        INVITE_CTRADER_WEBHOOK_USER=WEBHOOK[0],
                        INVITE_CTRADER_WEBHOOK_PASSWORD=WEBHOOK[1], INVITE_COOKIE_SECURE="0")
    return edge, fake_ctrader


def test_a_partners_links_answer_as_described(
    edge_and_fake: tuple[EdgeServer, FakeCTrader],
) -> None:
    edge, _ = edge_and_fake
    check = Described(edge)
    with edge.admin() as admin:
        check(admin.put("/api/partners/master", json={"name": "Master", "type": "ib"}), 201)
        check(admin.put("/api/partners/ib-7", json={
            "parentPartnerId": "master", "webhookUrl": "https://hooks.broker.test/ib-7",
            "ctidUserId": 77}), 201)
        check(admin.put("/api/partners/ib-7", json={"status": "active"}), 200)
        check(admin.get("/api/partners/ib-7"), 200)
        link = check(admin.post("/api/partners/ib-7/links", json={
            "campaign": "spring", "subId": "tg", "alias": "ib7-spring"}), 201)
        check(admin.get(f"/api/links/{link['code']}"), 200)
        check(admin.patch(f"/api/links/{link['code']}", json={"destination": None}), 200)
        check(admin.get(f"/api/links/{link['code']}/qr.svg"), 200)
        check(admin.get(f"/api/links/{link['code']}/qr.png"), 200)
        check(admin.get("/api/partners", params={"q": "ib", "limit": "1"}), 200)
        check(admin.get("/api/partners/master/links"), 200)
        tree = check(admin.get("/api/partners/master/tree", params={"depth": "2"}), 200)
        check(admin.post("/api/partners/ib-7/tokens"), 201)
        check(admin.delete("/api/partners/ib-7/tokens"), 200)
        check(admin.get("/api/partners/ib-7/webhook"), 200)
        check(admin.get("/api/alias-clashes"), 200)

    assert tree["tree"]["children"][0]["partnerId"] == "ib-7"


def test_a_registration_from_click_to_ctrader_answers_as_described(
    edge_and_fake: tuple[EdgeServer, FakeCTrader],
) -> None:
    edge, fake = edge_and_fake
    check = Described(edge)
    hook = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    with edge.admin() as admin:
        check(admin.put("/api/partners/ib-7", json={"type": "ib"}), 201)
        code = check(admin.post("/api/partners/ib-7/links", json={}), 201)["code"]

    with edge.client(headers={"User-Agent": CHROME}) as browser:
        check(browser.get(f"/r/{code}", params={"utm_source": "tg"}), 302)
        attribution = check(browser.get("/attribution"), 200)
        check(browser.post("/api/attribution/verify", json={"token": attribution["token"]}), 200)
        check(browser.head(f"/r/{code}"), 302)
        check(browser.get("/r/no-such-link"), 404)
    with edge.client(headers=hook) as backend:
        created = check(backend.post("/hooks/sso/users", json={
            "email": "new@trader.test", "firstName": "Ada", "token": attribution["token"]}), 200)
        check(backend.post("/hooks/sso/referral", json={
            "userId": created["userId"], "partnerId": "ib-7"}), 200)
        check(backend.post("/hooks/sso/users", json={"email": "plain@trader.test"}), 200)
    with edge.client(auth=WEBHOOK) as ctrader:
        check(ctrader.post("/hooks/ctrader/attribution", json={
            "invitedUserId": 4242, "partnerUserId": 77, "brokerName": fake.crm_name,
            "brokerPartnerId": "ib-7"}), 200)
    with edge.client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        check(admin.get("/api/ctrader/dead-letters"), 200)

    assert created["assignment"] in ("done", "queued")


def test_accepted_funnel_events_answer_as_described(
    edge_and_fake: tuple[EdgeServer, FakeCTrader],
) -> None:
    edge, _ = edge_and_fake
    check = Described(edge)
    now = int(time.time() * 1000)
    deposit = {"eventId": "d-1", "type": "deposit", "ts": now, "userId": 7, "amount": "250.5"}
    with edge.client(headers={"Authorization": f"Bearer {EVENTS_TOKEN}"}) as broker:
        stored = check(broker.post("/api/events", json={"events": [deposit]}), 200)
        again = check(broker.post(
            "/api/events", content=b'{"eventId": "d-1", "type": "deposit", "ts": %d, '
            b'"userId": 7, "amount": 250.5}\n' % now,
            headers={"Content-Type": "application/x-ndjson"}), 200)
        check(broker.post("/api/events", json={"events": [{**deposit, "amount": "-1"}]}), 422)

    assert (stored, again) == ({"accepted": 1, "duplicates": 0}, {"accepted": 0, "duplicates": 1})
