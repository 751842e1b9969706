"""Signed notifications to a partner's webhook when one of its referrals registers.

The body is JSON; the header `X-Invite-Signature: t=<unix seconds>,v1=<hex>` carries
HMAC-SHA256(partner webhook secret, "<t>." + body). The secret is derived per partner from
INVITE_SECRET (`GET /api/partners/{id}/webhook` shows it), so partners cannot sign for each other.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from edge.backoff import RetryPolicy, with_retries
from edge.errors import WebhookRejected, WebhookUnavailable
from edge.spelling import is_ascii_digits
from edge.sso.http_pool import HttpPool
from edge.sso.jobs import Job

NOTIFICATION = "notification"
SIGNATURE_HEADER = "X-Invite-Signature"
EVENT_HEADER = "X-Invite-Event-Id"
SIGNATURE_TOLERANCE_S = 300


def webhook_secret(secret: str, partner_id: str) -> str:
    """A partner's signing secret, the same in every process; changed by a new INVITE_SECRET."""
    return hmac.new(
        secret.encode(), b"invite-edge/webhook/" + partner_id.encode(), hashlib.sha256
    ).hexdigest()


def sign(partner_secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(
        partner_secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    partner_secret: str, body: bytes, header: str, now: float | None = None,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """What a partner does with a notification: check the signature and its age."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = fields.get("t", "")
    if not is_ascii_digits(timestamp) or "v1" not in fields:
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    expected = sign(partner_secret, body, int(timestamp)).partition(",v1=")[2]
    return hmac.compare_digest(expected, fields["v1"])


def notification_job(event_id: str, partner_id: str, url: str, body: dict[str, Any]) -> Job:
    return Job(NOTIFICATION, f"notify:{event_id}:{partner_id}",
               {"partnerId": partner_id, "url": url, "body": body})


class PartnerNotifier:
    """The outbox sender for notifications; one gate per webhook host."""

    kind = NOTIFICATION

    def __init__(
        self, http: httpx.AsyncClient | HttpPool, secret: str, policy: RetryPolicy
    ) -> None:
        self._http = http
        self._secret = secret
        self._policy = policy

    def destination(self, job: Job) -> str | None:
        return f"webhook {urlsplit(str(job.payload['url'])).netloc}"

    async def send(self, job: Job) -> None:
        url = str(job.payload["url"])
        body = orjson.dumps(job.payload["body"])
        partner_secret = webhook_secret(self._secret, str(job.payload["partnerId"]))
        shown = urlsplit(url).netloc

        async def attempt() -> None:
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(partner_secret, body, int(time.time())),
                EVENT_HEADER: str(job.payload["body"].get("eventId", "")),
            }
            try:
                response = await self._http.request(
                    "POST", url, content=body, headers=headers, timeout=self._policy.timeout_s
                )
            except httpx.TimeoutException:
                raise WebhookUnavailable(
                    f"webhook on {shown} did not answer within {self._policy.timeout_s:g} s"
                ) from None
            except httpx.HTTPError as exc:
                raise WebhookUnavailable(
                    f"webhook on {shown} failed: {type(exc).__name__}"
                ) from None
            status = response.status_code
            if status < 300:
                return
            message = f"webhook on {shown} answered {status}"
            if status >= 500 or status in (408, 429):
                raise WebhookUnavailable(message, http_status=status)
            raise WebhookRejected(message, http_status=status)

        await with_retries(self._policy, attempt)
