"""Which partner a registration is credited to: a signed token, a clickId, or a partnerId.

The signed token from `/attribution` is verified and preferred. A bare `clickId` is looked up in
the click stream around the millisecond its UUIDv7 encodes (the stream keeps clicks only until
the batcher has moved them, so this finds recent clicks); with a `partnerId` beside it, a clickId
that is no longer in the stream is taken on the hook caller's word. A `partnerId` alone is what
the cTrader app's own flow sends. Whatever names the partner, it must exist and be active.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from edge.clock import now_ms
from edge.errors import InvalidAttribution, InvalidInput, PartnerSuspended, UnknownPartner
from edge.hotpath.attribution import AttributionCodec
from edge.registry.model import Partner, check_partner_id
from edge.registry.partners import PartnerRegistry
from edge.spelling import is_canonical_uuid
from edge.streams import CLICK_STREAM, read_between

# A click reaches the stream within its group commit (250 ms), or later from the spool; the
# lookup also allows for clock skew between edge processes and Redis.
CLICK_LOOKUP_BEFORE_MS = 2_000
CLICK_LOOKUP_AFTER_MS = 10_000
CLICK_LOOKUP_MAX_ENTRIES = 50_000
CLICK_LOOKUP_PAGE = 1_000
FUTURE_TOLERANCE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Referral:
    partner: Partner
    click_id: str
    campaign: str

    @property
    def partner_id(self) -> str:
        return self.partner.partner_id


def click_time_ms(click_id: str) -> int:
    """The millisecond a UUIDv7 clickId was made; InvalidAttribution for anything else."""
    try:
        parsed = uuid.UUID(click_id)
    except ValueError:
        raise InvalidAttribution(f"clickId {click_id[:64]!r} is not a UUID") from None
    if not is_canonical_uuid(click_id):
        # One spelling only: upper case, braces, "urn:uuid:" or no dashes would name the same
        # click without matching the click the stream holds (and its partner check).
        raise InvalidAttribution(
            f"clickId {click_id!r} is not in the canonical form {str(parsed)!r} (lower case, with "
            "dashes), as the redirect and /attribution give it"
        )
    if parsed.version != 7:
        raise InvalidAttribution(f"clickId {click_id!r} is not a UUIDv7 clickId of this edge")
    return parsed.int >> 80


def _optional_string(body: dict[str, Any], key: str, limit: int = 4096) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidInput(f"{key} must be a non-empty string of at most {limit} characters")
    return value


class ReferralResolver:
    def __init__(
        self, registry: PartnerRegistry, codec: AttributionCodec, redis: Redis,
        attribution_ms: int,
    ) -> None:
        self._registry = registry
        self._codec = codec
        self._redis = redis
        self._attribution_ms = attribution_ms

    async def resolve(self, body: dict[str, Any]) -> Referral | None:
        """The referral the body's `token`, `clickId` or `partnerId` names; None without any."""
        token = _optional_string(body, "token")
        click_id = _optional_string(body, "clickId", 64)
        partner_id = _optional_string(body, "partnerId", 64)
        if partner_id is not None:
            check_partner_id(partner_id)
        if token is not None:
            attribution = self._codec.decode(token)
            if attribution is None:
                raise InvalidAttribution("token is forged, malformed or expired")
            for name, given, signed in (("partnerId", partner_id, attribution.partner_id),
                                        ("clickId", click_id, attribution.click_id)):
                if given is not None and given != signed:
                    raise InvalidAttribution(
                        f"{name} {given!r} differs from the token's {signed!r}"
                    )
            partner = await self._active_partner(attribution.partner_id)
            return Referral(partner, attribution.click_id, attribution.campaign or "")
        if click_id is not None:
            clicked_at = click_time_ms(click_id)
            now = now_ms()
            if clicked_at > now + FUTURE_TOLERANCE_MS:
                raise InvalidAttribution(f"clickId {click_id!r} is from the future")
            if clicked_at < now - self._attribution_ms:
                raise InvalidAttribution(
                    f"clickId {click_id!r} is older than the attribution window "
                    f"({self._attribution_ms // 86_400_000} days)"
                )
            click = await self.find_click(click_id, clicked_at)
            if click is None and partner_id is None:
                raise InvalidAttribution(
                    f"clickId {click_id!r} is not among the recent clicks: send the signed token "
                    "from /attribution, or the partnerId with it"
                )
            if click is not None:
                credited = str(click.get("partner_id") or "")
                if click.get("outcome") != "credited" or not credited:
                    raise InvalidAttribution(
                        f"clickId {click_id!r} was not credited to a partner "
                        f"({click.get('outcome')})"
                    )
                if partner_id is not None and partner_id != credited:
                    raise InvalidAttribution(
                        f"partnerId {partner_id!r} differs from the click's {credited!r}"
                    )
                partner = await self._active_partner(credited)
                return Referral(partner, click_id, str(click.get("campaign") or ""))
            assert partner_id is not None
            return Referral(await self._active_partner(partner_id), click_id, "")
        if partner_id is not None:
            return Referral(await self._active_partner(partner_id), "", "")
        return None

    async def _active_partner(self, partner_id: str) -> Partner:
        partner = await self._registry.find(partner_id)
        if partner is None:
            raise UnknownPartner(f"partner {partner_id!r} does not exist")
        if not partner.active:
            raise PartnerSuspended(
                f"partner {partner_id!r} is suspended: its referrals are not credited"
            )
        return partner

    async def find_click(self, click_id: str, clicked_at_ms: int) -> dict[str, Any] | None:
        """The click event with this id, read from the stream around its own millisecond."""
        async for _, event in read_between(
            self._redis, CLICK_STREAM, clicked_at_ms - CLICK_LOOKUP_BEFORE_MS,
            clicked_at_ms + CLICK_LOOKUP_AFTER_MS, page=CLICK_LOOKUP_PAGE,
            limit=CLICK_LOOKUP_MAX_ENTRIES, containing=click_id,
        ):
            if event.get("click_id") == click_id:
                return event
        return None
