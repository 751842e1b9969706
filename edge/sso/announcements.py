"""Partner notifications the analytics side finds (a referral's first deposit, a closed month's
statement), read from `invite:notifications` and handed to the outbox, which signs, sends and
retries them.

Every edge process reads in the consumer group `announcers`; an entry is acknowledged once its
notification is in the outbox (idempotent: a referral's FTD is announced once, a month's
statement once per partner).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from edge.errors import BadEvent
from edge.registry.partners import PartnerRegistry
from edge.shutdown import cancel_within
from edge.sso.notify import notification_job
from edge.sso.outbox import Outbox
from edge.streams import NOTIFICATION_STREAM, decode_event

log = logging.getLogger("invite.announcements")

GROUP = "announcers"
READ_BLOCK_MS = 1000
RETRY_S = 1.0
KNOWN = frozenset({"referral.ftd", "commission.statement"})


class Announcements:
    def __init__(self, redis: Redis, registry: PartnerRegistry, outbox: Outbox) -> None:
        self._redis = redis
        self._registry = registry
        self._outbox = outbox
        self._consumer = f"{socket.gethostname()}-{os.getpid()}"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="announcements")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_within((self._task,))

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self._ensure_group()
                await self._read("0")  # what this consumer left pending
                while True:
                    await self._read(">")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("reading partner notifications failed (%s); retrying",
                                type(exc).__name__)
                    failing = True
                await asyncio.sleep(RETRY_S)

    async def _ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(NOTIFICATION_STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self, start: str) -> None:
        reply: Any = await self._redis.xreadgroup(
            GROUP, self._consumer, {NOTIFICATION_STREAM: start}, count=100,
            block=READ_BLOCK_MS if start == ">" else None,
        )
        for _, entries in reply or []:
            for entry_id, fields in entries:
                await self._announce(fields)
                await self._redis.xack(NOTIFICATION_STREAM, GROUP, entry_id)
                await self._redis.xdel(NOTIFICATION_STREAM, entry_id)

    async def _announce(self, fields: Any) -> None:
        try:
            notice = decode_event(fields)
        except BadEvent as exc:
            log.warning("skipping an unreadable partner notification: %s", exc)
            return
        kind, partner_id = notice.get("type"), notice.get("partnerId")
        body = _body(notice) if kind in KNOWN and isinstance(partner_id, str) else None
        if body is None or not isinstance(partner_id, str):
            log.warning("skipping a partner notification of kind %r", str(kind)[:40])
            return
        partner = await self._registry.find(partner_id)
        if partner is None or not partner.webhook_url:
            return  # nobody to tell
        await self._outbox.submit(
            notification_job(body["eventId"], partner_id, partner.webhook_url, body), budget_s=0
        )


def _body(notice: dict[str, Any]) -> dict[str, Any] | None:
    """What the partner's webhook gets; its eventId makes the notification idempotent (once per
    referral for a first deposit, once per month for a statement). None: not a notice."""
    partner_id = notice["partnerId"]
    if notice["type"] == "referral.ftd":
        user_id = notice.get("userId")
        if not isinstance(user_id, str):
            return None
        return {
            "type": "referral.ftd", "eventId": f"ftd:{user_id}", "partnerId": partner_id,
            "userId": user_id, "depositEventId": notice.get("eventId"),
            "amount": notice.get("amount"), "ts": notice.get("ts"),
        }
    period = notice.get("period")
    if not isinstance(period, str):
        return None
    return {
        "type": "commission.statement", "eventId": f"statement:{period}", "partnerId": partner_id,
        "period": period, "lines": notice.get("lines"), "amount": notice.get("amount"),
        "currency": notice.get("currency"),
        "statement": f"/api/statements/{partner_id}/{period}",
    }
