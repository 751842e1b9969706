"""The outbox: nothing lost across restarts and outages, nothing repeated, dead letters visible."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from edge.sso.jobs import STREAM
from tests.conftest import EdgeServer, wait_for
from tests.edge.helpers import put_partner
from tests.edge.sso.hooks_support import call_hook, conversions, start_hook_edge
from tests.fake_ctrader import FakeCTrader

pytestmark = pytest.mark.servers
REFERRAL = "/hooks/sso/referral"
TAKEOVER = {"INVITE_OUTBOX_CLAIM_IDLE_MS": "200"}


def _assign(edge: EdgeServer, user_id: int, partner_id: str = "ib-7") -> str:
    response = call_hook(edge, REFERRAL, {"userId": user_id, "partnerId": partner_id})
    assert response.status_code == 200, response.text
    assignment: str = response.json()["assignment"]
    return assignment


def _puts_for(fake: FakeCTrader, user_id: int) -> int:
    return sum(1 for call in fake.assignments() if (call.body or {}).get("userId") == user_id)


def test_queued_assignments_survive_a_restart_during_an_outage(
    edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader,
    redis_client: redis.Redis,
) -> None:
    first = start_hook_edge(edge_factory, fake_ctrader, **TAKEOVER)
    put_partner(first, "ib-7")
    users = [fake_ctrader.add_user() for _ in range(5)]
    fake_ctrader.down = True
    assert {_assign(first, user) for user in users} == {"queued"}
    first.stop()
    fake_ctrader.down = False
    calls_before = len(fake_ctrader.assignments())

    start_hook_edge(edge_factory, fake_ctrader, **TAKEOVER)
    wait_for(lambda: all(fake_ctrader.referrals.get(user) == "ib-7" for user in users),
             what="the other process to send what the stopped one left")
    wait_for(lambda: redis_client.xlen(STREAM) == 0, what="the outbox to empty")
    assert len(fake_ctrader.assignments()) - calls_before == len(users)
    assert len(conversions(redis_client)) == len(users)


def test_assignments_wait_until_ctrader_is_configured(
    edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader,
    redis_client: redis.Redis,
) -> None:
    unconfigured = edge_factory(**TAKEOVER)
    put_partner(unconfigured, "ib-7")
    user_id = fake_ctrader.add_user()
    assert _assign(unconfigured, user_id) == "queued"
    assert len(conversions(redis_client)) == 1
    unconfigured.stop()
    start_hook_edge(edge_factory, fake_ctrader, **TAKEOVER)
    wait_for(lambda: fake_ctrader.referrals.get(user_id) == "ib-7", what="the waiting assignment")
    assert _puts_for(fake_ctrader, user_id) == 1


def test_a_done_assignment_is_not_repeated_after_a_restart(
    edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader,
    redis_client: redis.Redis,
) -> None:
    first = start_hook_edge(edge_factory, fake_ctrader)
    put_partner(first, "ib-7")
    user_id = fake_ctrader.add_user()
    assert _assign(first, user_id) == "done"
    first.stop()
    second = start_hook_edge(edge_factory, fake_ctrader)
    assert _assign(second, user_id) == "done"
    assert _puts_for(fake_ctrader, user_id) == 1
    assert len(conversions(redis_client)) == 1


def test_a_new_partner_for_the_same_user_is_a_new_assignment(
    edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader
) -> None:
    edge = start_hook_edge(edge_factory, fake_ctrader)
    put_partner(edge, "ib-7")
    put_partner(edge, "ib-8")
    user_id = fake_ctrader.add_user()
    assert _assign(edge, user_id, "ib-7") == "done"
    assert _assign(edge, user_id, "ib-8") == "done"
    assert fake_ctrader.referrals[user_id] == "ib-8"


def test_concurrent_hooks_under_rate_limiting_deliver_each_assignment_once(
    edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader,
    redis_client: redis.Redis,
) -> None:
    edge = start_hook_edge(edge_factory, fake_ctrader)
    put_partner(edge, "ib-7")
    users = [fake_ctrader.add_user() for _ in range(20)]
    fake_ctrader.fail("rate_limit", times=6, path="/cid/oauth2/ctid/referral")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda user: _assign(edge, user), users + users))
    wait_for(lambda: all(fake_ctrader.referrals.get(user) == "ib-7" for user in users),
             what="every assignment")
    refused = 6
    assert len(fake_ctrader.assignments()) == len(users) + refused
    assert len(conversions(redis_client)) == len(users)


def test_an_unreadable_outbox_entry_becomes_a_dead_letter(
    edge_factory: Callable[..., EdgeServer], fake_ctrader: FakeCTrader,
    redis_client: redis.Redis,
) -> None:
    edge = start_hook_edge(edge_factory, fake_ctrader)
    redis_client.xadd(STREAM, {"kind": "assignment", "key": "k", "job": "{broken"})
    wait_for(lambda: redis_client.xlen(STREAM) == 0, what="the entry to leave the outbox")
    with edge.admin() as admin:
        [letter] = admin.get("/api/ctrader/dead-letters").json()["deadLetters"]
        assert admin.get("/api/ctrader/dead-letters?limit=0").status_code == 422
        assert admin.get("/api/ctrader/dead-letters?limt=5").status_code == 422  # a typo
    assert letter["error"]["code"] == "unreadable"
    assert letter["job"] == "{broken"
