"""Registrations of referred users: the partner assignment in cTrader, the conversion, the notice.

An assignment is an outbox job keyed by user and partner: submitted twice, it is done once.
When the outbox accepts it (before anything is sent), the registration becomes a conversion
event and, when the partner has a webhook, a signed notification job. cTrader's own in-app
invitations arrive on a webhook and are mapped to partners here as well.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import LockError

from edge.clock import now_ms
from edge.errors import Conflict
from edge.registry.model import Partner
from edge.registry.partners import PartnerRegistry
from edge.sso.conversions import (
    REATTRIBUTION,
    REGISTRATION,
    ConversionEvent,
    reattribution_id,
    record_conversion,
    registration_id,
)
from edge.sso.ctrader import CTraderClient, CTraderUser
from edge.sso.jobs import IDEMPOTENCY_TTL_S, PREFIX, Job, Outcome
from edge.sso.notify import notification_job
from edge.sso.outbox import Outbox
from edge.sso.referrals import Referral

ASSIGNMENT = "assignment"
ATTRIBUTED_NEW = "ATTRIBUTED_NEW"
ATTRIBUTED = "ATTRIBUTED"
REATTRIBUTED = "REATTRIBUTED"
PENDING_ATTRIBUTION = "PENDING_ATTRIBUTION"
# One user creation per e-mail at a time: the lock outlives any create call (its retries
# included); a second call waits this long for the first before answering 409.
CREATE_LOCK_S = 120.0
CREATE_WAIT_S = 60.0


def user_partner_key(user_id: int) -> str:
    """The partner a cTrader ID user is attributed to, as far as the edge knows."""
    return f"{PREFIX}user:{user_id}"


def email_key(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"{PREFIX}email:{digest}"


def pending_key(user_id: int) -> str:
    return f"{PREFIX}pending:{user_id}"


class AssignmentSender:
    """The outbox sender that sets the partner identifier in cTrader."""

    kind = ASSIGNMENT

    def __init__(self, client: CTraderClient) -> None:
        self._client = client

    def destination(self, job: Job) -> str | None:
        return "cTrader" if self._client.configured else None

    async def send(self, job: Job) -> None:
        user = CTraderUser(job.payload.get("userId"), job.payload.get("ctidTraderAccountId"))
        await self._client.set_partner(user, str(job.payload["partnerId"]))


@dataclass(frozen=True, slots=True)
class WebhookVerdict:
    broker_result: str
    partner_id: str | None


class Registrations:
    def __init__(
        self, redis: Redis, registry: PartnerRegistry, outbox: Outbox, client: CTraderClient
    ) -> None:
        self._redis = redis
        self._registry = registry
        self._outbox = outbox
        self._client = client

    async def assign(
        self, user: CTraderUser, referral: Referral, source: str, budget_s: float
    ) -> Outcome:
        """Queue the partner assignment (once per user and partner) and send it within budget."""
        partner = referral.partner
        event = ConversionEvent(
            event_id=registration_id(user.user_id, user.ctid_trader_account_id),
            event_type=REGISTRATION,
            ts=now_ms(),
            user_id="" if user.user_id is None else str(user.user_id),
            ctid_trader_account_id=""
            if user.ctid_trader_account_id is None else str(user.ctid_trader_account_id),
            click_id=referral.click_id,
            partner_id=partner.partner_id,
            ancestors=partner.ancestors,
            campaign=referral.campaign,
            source=source,
        )
        job = Job(ASSIGNMENT, f"assign:{user.key}:{partner.partner_id}", {
            **user.fields(),
            "partnerId": partner.partner_id,
            "conversion": event.to_json(),
            "webhookUrl": partner.webhook_url,
        })
        return await self._outbox.submit(job, budget_s)

    async def on_assignment_accepted(self, job: Job) -> None:
        """Once per assignment: the conversion event, the user's partner, the partner's notice."""
        event = ConversionEvent.from_json(job.payload["conversion"])
        await record_conversion(self._redis, event)
        if event.user_id:
            await self._redis.set(
                user_partner_key(int(event.user_id)), event.partner_id, ex=IDEMPOTENCY_TTL_S
            )
        await self._notify(event, job.payload.get("webhookUrl"))

    async def _notify(self, event: ConversionEvent, webhook_url: str | None) -> None:
        if not webhook_url:
            return
        body: dict[str, Any] = {
            "type": f"referral.{event.event_type}",
            "eventId": event.event_id,
            "partnerId": event.partner_id,
            "userId": event.user_id or None,
            "ctidTraderAccountId": event.ctid_trader_account_id or None,
            "clickId": event.click_id or None,
            "campaign": event.campaign or None,
            "source": event.source,
            "ts": event.ts,
        }
        job = notification_job(event.event_id, event.partner_id, webhook_url, body)
        await self._outbox.submit(job, budget_s=0)  # the worker sends it; nobody waits

    async def create_user(
        self, email: str, *, preferred_language: str | None, nick_name: str | None,
        first_name: str | None,
    ) -> int:
        """Create the cTrader ID user, or return the one an earlier call created for the email.

        Calls for one e-mail take turns (a registration form submitted twice at once must not
        create two users): the second waits for the first and returns its user.
        """
        key = email_key(email)
        known = await self._redis.get(key)
        if known:
            return int(known)
        lock = self._redis.lock(f"{key}:creating", timeout=CREATE_LOCK_S, blocking_timeout=None)
        if not await lock.acquire(blocking_timeout=CREATE_WAIT_S):
            raise Conflict(
                "another call is creating the user for this e-mail right now; retry in a moment"
            )
        try:
            known = await self._redis.get(key)
            if known:
                return int(known)
            user_id = await self._client.create_user(
                email, preferred_language=preferred_language, nick_name=nick_name,
                first_name=first_name,
            )
            await self._redis.set(key, str(user_id), ex=IDEMPOTENCY_TTL_S)
            return user_id
        finally:
            with contextlib.suppress(LockError):
                await lock.release()

    async def invited_in_app(
        self, invited_user_id: int, partner_user_id: int, broker_partner_id: str | None
    ) -> WebhookVerdict:
        """cTrader's webhook: whom a user invited inside the cTrader app is credited to."""
        partner = await self._inviting_partner(partner_user_id, broker_partner_id)
        if partner is None:
            await self._redis.hset(pending_key(invited_user_id), mapping={
                "partnerUserId": str(partner_user_id),
                "brokerPartnerId": broker_partner_id or "",
                "ts": str(now_ms()),
            })
            await self._redis.expire(pending_key(invited_user_id), IDEMPOTENCY_TTL_S)
            return WebhookVerdict(PENDING_ATTRIBUTION, None)
        previous = await self._redis.get(user_partner_key(invited_user_id))
        if previous == partner.partner_id:
            return WebhookVerdict(ATTRIBUTED, partner.partner_id)
        new = previous is None
        event = ConversionEvent(
            event_id=registration_id(invited_user_id, None) if new
            else reattribution_id(invited_user_id, partner.partner_id),
            event_type=REGISTRATION if new else REATTRIBUTION,
            ts=now_ms(),
            user_id=str(invited_user_id),
            ctid_trader_account_id="",
            click_id="",
            partner_id=partner.partner_id,
            ancestors=partner.ancestors,
            campaign="",
            source="ctrader_webhook",
        )
        # The event first: a crash before the SET repeats it with the same event_id.
        await record_conversion(self._redis, event)
        await self._redis.set(
            user_partner_key(invited_user_id), partner.partner_id, ex=IDEMPOTENCY_TTL_S
        )
        await self._redis.delete(pending_key(invited_user_id))
        await self._notify(event, partner.webhook_url)
        return WebhookVerdict(ATTRIBUTED_NEW if new else REATTRIBUTED, partner.partner_id)

    async def _inviting_partner(
        self, partner_user_id: int, broker_partner_id: str | None
    ) -> Partner | None:
        """The broker's partner named by cTrader, else the one whose own cTrader ID user invited."""
        if broker_partner_id:
            named = await self._registry.find(broker_partner_id)
            if named is not None and named.active:
                return named
        inviter = await self._registry.find_by_ctid_user(partner_user_id)
        return inviter if inviter is not None and inviter.active else None
