"""The cTrader client against the fake backend: calls, typed errors, retries, token renewal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from edge.backoff import Gate, RetryPolicy
from edge.errors import (
    CTraderAuthFailed,
    CTraderNotConfigured,
    CTraderRateLimited,
    CTraderRejected,
    CTraderUnavailable,
    InvalidInput,
)
from edge.sso.ctrader import CTraderClient, CTraderUser
from tests.fake_ctrader import FakeCTrader

T = TypeVar("T")
FAST = RetryPolicy(attempts=3, base_s=0.01, max_s=0.05, timeout_s=0.3)


def run(fake: FakeCTrader, work: Callable[[CTraderClient], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with httpx.AsyncClient() as http:
            settings: dict[str, Any] = {"token": fake.fixed_token, "policy": FAST}
            settings.update(options)
            base_url = settings.pop("base_url", fake.url)
            client = CTraderClient(http, base_url, fake.crm_name, **settings)
            return await work(client)

    return asyncio.run(main())


def test_create_user_returns_the_new_user_id(fake_ctrader: FakeCTrader) -> None:
    user_id = run(fake_ctrader, lambda c: c.create_user("ann@example.test", first_name="Ann"))
    assert fake_ctrader.users[user_id]["email"] == "ann@example.test"
    [call] = fake_ctrader.calls_to("POST", "/cid/oauth2/ctid/create")
    assert call.body == {"brokerCrmName": "test-broker", "email": "ann@example.test",
                         "firstName": "Ann"}
    assert call.token == fake_ctrader.fixed_token


def test_set_get_and_delete_the_partner_identifier(fake_ctrader: FakeCTrader) -> None:
    user_id = fake_ctrader.add_user()
    user = CTraderUser(user_id=user_id)

    async def work(client: CTraderClient) -> tuple[dict[str, Any], dict[str, Any]]:
        await client.set_partner(user, "ib-7")
        before = await client.get_partner(user)
        await client.delete_partner(user)
        return before, await client.get_partner(user)

    before, after = run(fake_ctrader, work)
    assert before["partnerId"] == "ib-7"
    assert after["partnerId"] is None
    [put] = fake_ctrader.assignments()
    assert put.body == {"brokerCrmName": "test-broker", "partnerId": "ib-7", "userId": user_id}


def test_partner_identifier_by_trading_account(fake_ctrader: FakeCTrader) -> None:
    account = fake_ctrader.add_account(fake_ctrader.add_user())
    run(fake_ctrader, lambda c: c.set_partner(CTraderUser(ctid_trader_account_id=account), "p"))
    assert fake_ctrader.assignments()[0].body["ctidTraderAccountId"] == account  # type: ignore[index]


def test_user_needs_exactly_one_identifier() -> None:
    with pytest.raises(InvalidInput):
        CTraderUser()
    with pytest.raises(InvalidInput):
        CTraderUser(user_id=1, ctid_trader_account_id=2)


@pytest.mark.parametrize("fault", ["500", "timeout", "rate_limit"])
def test_transient_failures_are_retried(fake_ctrader: FakeCTrader, fault: str) -> None:
    user_id = fake_ctrader.add_user()
    fake_ctrader.fail(fault, times=2)
    run(fake_ctrader, lambda c: c.set_partner(CTraderUser(user_id=user_id), "ib-7"))
    assert len(fake_ctrader.assignments()) == 3
    assert fake_ctrader.referrals[user_id] == "ib-7"


def test_retries_stop_at_the_attempt_limit(fake_ctrader: FakeCTrader) -> None:
    user_id = fake_ctrader.add_user()
    fake_ctrader.fail("500", times=10)
    with pytest.raises(CTraderUnavailable, match="gave up after 3 tries") as caught:
        run(fake_ctrader, lambda c: c.set_partner(CTraderUser(user_id=user_id), "ib-7"))
    assert caught.value.error_code == "INTERNAL_SERVER_ERROR"
    assert caught.value.retryable
    assert len(fake_ctrader.assignments()) == 3


def test_rate_limit_is_a_typed_retryable_error(fake_ctrader: FakeCTrader) -> None:
    user_id = fake_ctrader.add_user()
    fake_ctrader.fail("rate_limit", times=10)
    with pytest.raises(CTraderRateLimited) as caught:
        run(fake_ctrader, lambda c: c.set_partner(CTraderUser(user_id=user_id), "ib-7"))
    assert caught.value.error_code == "REQUEST_FREQUENCY_EXCEEDED"


def test_invalid_request_is_final_and_not_retried(fake_ctrader: FakeCTrader) -> None:
    with pytest.raises(CTraderRejected) as caught:
        run(fake_ctrader, lambda c: c.set_partner(CTraderUser(user_id=999), "ib-7"))
    assert caught.value.error_code == "INVALID_REQUEST"
    assert caught.value.description == "user not found"
    assert not caught.value.retryable
    assert len(fake_ctrader.assignments()) == 1


def test_manager_token_is_obtained_with_md5_of_the_password(fake_ctrader: FakeCTrader) -> None:
    user_id = fake_ctrader.add_user()
    run(fake_ctrader, lambda c: c.set_partner(CTraderUser(user_id=user_id), "p"),
        token=None, manager_login=1001, manager_password="manager-password")
    [login] = fake_ctrader.calls_to("POST", "/v2/webserv/managers/token")
    assert login.body == {"login": 1001, "hashedPassword": "d9e434d55781c32f66f01d6809fea7ab"}
    assert fake_ctrader.assignments()[0].token in fake_ctrader.issued_tokens


def test_expired_token_is_renewed_once_and_the_call_goes_through(
    fake_ctrader: FakeCTrader,
) -> None:
    user_id = fake_ctrader.add_user()
    user = CTraderUser(user_id=user_id)

    async def work(client: CTraderClient) -> None:
        await client.set_partner(user, "first")
        fake_ctrader.expire_tokens()
        await client.set_partner(user, "second")

    run(fake_ctrader, work, token=None, manager_login=1001, manager_password="manager-password")
    assert len(fake_ctrader.calls_to("POST", "/v2/webserv/managers/token")) == 2
    first, refused, renewed = fake_ctrader.assignments()
    assert refused.token == first.token != renewed.token
    assert fake_ctrader.referrals[user_id] == "second"


def test_refused_fixed_token_says_what_to_set(fake_ctrader: FakeCTrader) -> None:
    with pytest.raises(CTraderAuthFailed, match="INVITE_CTRADER_TOKEN"):
        run(fake_ctrader, lambda c: c.get_partner(CTraderUser(user_id=1)), token="wrong")


def test_wrong_manager_password_is_an_auth_failure(fake_ctrader: FakeCTrader) -> None:
    with pytest.raises(CTraderAuthFailed):
        run(fake_ctrader, lambda c: c.get_partner(CTraderUser(user_id=1)),
            token=None, manager_login=1001, manager_password="wrong")


def test_unconfigured_client_names_the_missing_settings() -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as http:
            client = CTraderClient(http, None, None)
            assert not client.configured
            await client.get_partner(CTraderUser(user_id=1))

    with pytest.raises(CTraderNotConfigured, match="INVITE_CTRADER_URL"):
        asyncio.run(main())


def test_token_never_reaches_logs_or_errors(
    fake_ctrader: FakeCTrader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_ctrader.fail("timeout", times=3)
    with pytest.raises(CTraderUnavailable) as caught:
        run(fake_ctrader, lambda c: c.get_partner(CTraderUser(user_id=1)))
    run(fake_ctrader, lambda c: c.create_user("log@example.test"))
    assert fake_ctrader.fixed_token not in caplog.text
    assert "token=***" in caplog.text  # httpx's request lines are there, redacted
    assert fake_ctrader.fixed_token not in str(caught.value)


def test_backoff_grows_with_jitter_and_stays_under_the_cap() -> None:
    policy = RetryPolicy(base_s=0.1, max_s=1.0)
    delays = [policy.delay(failures) for failures in range(1, 12) for _ in range(20)]
    assert all(0 <= delay <= 1.0 for delay in delays)
    assert len(set(delays)) > 100  # jittered, not a fixed schedule
    assert policy.delay(3, floor_s=0.7) >= 0.7


def test_gate_lets_one_probe_through_after_a_failure() -> None:
    gate = Gate(RetryPolicy(base_s=0.0, max_s=0.0))
    assert gate.try_enter()
    assert gate.failed()
    assert gate.try_enter()  # the probe
    assert not gate.try_enter()  # only one at a time
    assert gate.succeeded()
    assert gate.try_enter() and gate.try_enter()
