"""Conversion events: each attributed registration, appended to the `invite:conversions` stream.

The batcher moves them into ClickHouse `conversions`. `event_id` is deterministic, so the same
registration recorded twice (a retried hook, a replayed outbox entry) collapses into one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from edge.streams import CONVERSION_STREAM, append_event

REGISTRATION = "registration"
REATTRIBUTION = "reattribution"
SOURCES = ("sso_referral", "sso_users", "ctrader_webhook")


@dataclass(frozen=True, slots=True)
class ConversionEvent:
    event_id: str
    event_type: str
    ts: int  # epoch milliseconds
    user_id: str
    ctid_trader_account_id: str
    click_id: str
    partner_id: str
    ancestors: tuple[str, ...]  # root first, as the registry had them at that moment
    campaign: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "ts": self.ts,
            "user_id": self.user_id,
            "ctid_trader_account_id": self.ctid_trader_account_id,
            "click_id": self.click_id,
            "partner_id": self.partner_id,
            "ancestors": list(self.ancestors),
            "campaign": self.campaign,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, fields: dict[str, Any]) -> ConversionEvent:
        return cls(
            event_id=str(fields["event_id"]),
            event_type=str(fields["event_type"]),
            ts=int(fields["ts"]),
            user_id=str(fields["user_id"]),
            ctid_trader_account_id=str(fields["ctid_trader_account_id"]),
            click_id=str(fields["click_id"]),
            partner_id=str(fields["partner_id"]),
            ancestors=tuple(map(str, fields["ancestors"])),
            campaign=str(fields["campaign"]),
            source=str(fields["source"]),
        )


def registration_id(user_id: int | None, ctid_trader_account_id: int | None) -> str:
    """`registration:<userId>`, or `registration:account:<id>` when only the account is known."""
    if user_id is not None:
        return f"{REGISTRATION}:{user_id}"
    return f"{REGISTRATION}:account:{ctid_trader_account_id}"


def reattribution_id(user_id: int, partner_id: str) -> str:
    return f"{REATTRIBUTION}:{user_id}:{partner_id}"


async def record_conversion(redis: Redis, event: ConversionEvent) -> None:
    await append_event(redis, CONVERSION_STREAM, event.to_json())
