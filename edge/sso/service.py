"""The SSO room put together for one process: the HTTP pool, the cTrader client, the outbox with
its senders, registrations and the referral resolver, and the routes that use them."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from starlette.routing import BaseRoute

from edge.backoff import RetryPolicy
from edge.config import Settings
from edge.hotpath.attribution import AttributionCodec
from edge.registry.partners import PartnerRegistry
from edge.sso import admin, hooks
from edge.sso.announcements import Announcements
from edge.sso.ctrader import CTraderClient
from edge.sso.http_pool import HttpPool
from edge.sso.notify import PartnerNotifier
from edge.sso.outbox import Outbox
from edge.sso.referrals import ReferralResolver
from edge.sso.registrations import AssignmentSender, Registrations

WEBHOOK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Sso:
    http: HttpPool
    outbox: Outbox
    registrations: Registrations
    referrals: ReferralResolver
    announcements: Announcements

    @property
    def routes(self) -> list[BaseRoute]:
        return [*hooks.routes, *admin.routes]

    async def start(self) -> None:
        await self.outbox.start()
        await self.announcements.start()

    async def close(self, deadline_s: float) -> None:
        await self.announcements.close()
        await self.outbox.close(deadline_s)
        await self.http.aclose()


def create_sso(
    settings: Settings, redis: Redis, registry: PartnerRegistry, codec: AttributionCodec,
    metrics: CollectorRegistry,
) -> Sso:
    http = HttpPool()
    ctrader = CTraderClient.from_settings(settings.ctrader, http)
    outbox = Outbox(
        redis, ctrader.policy, concurrency=settings.ctrader.outbox_concurrency,
        claim_idle_ms=settings.ctrader.outbox_claim_idle_ms, registry=metrics,
    )
    registrations = Registrations(redis, registry, outbox, ctrader)
    outbox.register(AssignmentSender(ctrader), registrations.on_assignment_accepted)
    outbox.register(PartnerNotifier(http, settings.signing_secret, _webhook_policy(ctrader.policy)))
    referrals = ReferralResolver(registry, codec, redis, settings.edge.attribution_seconds * 1000)
    return Sso(http, outbox, registrations, referrals, Announcements(redis, registry, outbox))


def _webhook_policy(ctrader: RetryPolicy) -> RetryPolicy:
    """Partners' webhooks get cTrader's retry schedule with a shorter wait for an answer."""
    return RetryPolicy(ctrader.attempts, ctrader.base_s, ctrader.max_s,
                       min(ctrader.timeout_s, WEBHOOK_TIMEOUT_S))
