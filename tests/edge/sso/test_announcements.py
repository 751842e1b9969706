"""A referral's first deposit, found by the analytics side, reaches the partner's webhook: signed,
through the outbox, once per user."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis

from edge.sso.notify import verify, webhook_secret
from tests.conftest import SECRET, EdgeServer, wait_for
from tests.edge.helpers import put_partner
from tests.edge.sso.hooks_support import WebhookReceiver

pytestmark = pytest.mark.servers


def announce(client: redis.Redis, **notice: Any) -> None:
    client.xadd("invite:notifications", {"e": orjson.dumps(notice)})


def test_a_first_deposit_is_announced_to_the_partner_once(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    with WebhookReceiver() as receiver:
        put_partner(edge, "ib-ftd", webhookUrl=receiver.url)
        notice = {"type": "referral.ftd", "userId": "77", "partnerId": "ib-ftd",
                  "eventId": "dep-1", "amount": "250", "ts": 1_796_000_000_000}
        announce(redis_client, **notice)
        announce(redis_client, **notice)  # found again (a rerun): still one notification
        announce(redis_client, type="referral.ftd", userId="78", partnerId="nobody-here")
        wait_for(lambda: len(receiver.received) >= 1, timeout=20, what="the webhook call")
        wait_for(lambda: redis_client.xlen("invite:notifications") == 0, timeout=20,
                 what="the notices to be taken")
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    secret = webhook_secret(SECRET, "ib-ftd")
    assert verify(secret, body, headers["x-invite-signature"])
    sent = orjson.loads(body)
    assert (sent["type"], sent["userId"], sent["amount"], sent["depositEventId"]) == (
        "referral.ftd", "77", "250", "dep-1")
