"""The hot path's view of links: an in-process cache, invalidated by the registry's changes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from redis.asyncio import Redis
from redis.exceptions import RedisError

from edge.hotpath.location import Destination
from edge.registry.keys import CHANGES_CHANNEL, link_key, partner_key
from edge.registry.model import Partner
from edge.registry.partners import PartnerRegistry, read_hash

log = logging.getLogger("invite.resolver")

MAX_CACHED_CODES = 200_000
RESUBSCRIBE_DELAY_S = 0.5
REVALIDATE_CHUNK = 32  # links loaded at once: as many Redis connections


@dataclass(frozen=True, slots=True)
class ResolvedLink:
    code: str  # as asked, but an alias as the registry spells it (aliases ignore case)
    partner_id: str
    ancestors: tuple[str, ...]
    campaign: str | None
    sub_id: str | None
    destination_url: str
    destination: Destination
    credited: bool  # False while the partner is suspended: redirect, but attribute to nobody
    # "credited", "suspended" (redirect, attribute to nobody) or "disabled" (the link answers
    # like an unknown code; its clicks are still recorded, with the partner).
    outcome: str
    # The Location's own parameters around the click id, encoded once: "partnerId=…&clickId="
    # and "&campaign=…" (or "clickId=" and "" when not credited).
    params_head: str
    params_tail: str


class LinkResolver:
    """Resolves codes and aliases; cache hits cost a dict lookup, misses one Redis round trip."""

    def __init__(
        self,
        redis: Redis,
        feed: Redis,
        registry: PartnerRegistry,
        default_destination: str,
    ) -> None:
        self._redis = redis
        self._feed = feed  # a client without a read timeout: the change feed is idle for hours
        self._registry = registry
        self._default_url = default_destination
        self._default = Destination.parse(default_destination)
        self._cache: dict[str, ResolvedLink | None] = {}
        self._generation = 0
        self.subscribed = asyncio.Event()

    def clear(self) -> None:
        self._generation += 1
        self._cache.clear()

    def cached(self, code: str) -> tuple[bool, ResolvedLink | None]:
        """(found, link) from the cache alone; link None with found True is a known-unknown code."""
        if code in self._cache:
            return True, self._cache[code]
        return False, None

    async def resolve(self, code: str) -> ResolvedLink | None:
        """The link a code names, None for an unknown code; RedisError when Redis cannot answer."""
        found, link = self.cached(code)
        if found:
            return link
        generation = self._generation
        link = await self._load(code)
        if generation == self._generation:
            if len(self._cache) >= MAX_CACHED_CODES:
                self._cache.clear()
            self._cache[code] = link
        return link

    async def _load(self, code: str) -> ResolvedLink | None:
        numbers = await self._registry.link_numbers(code)
        if numbers is None:
            return None
        link_fields = await read_hash(self._redis, link_key(*numbers))
        if not link_fields:
            return None
        partner_id = link_fields["partner_id"]
        partner_fields = await read_hash(self._redis, partner_key(partner_id))
        if not partner_fields:
            return None
        partner = Partner.from_hash(partner_id, partner_fields)
        alias = link_fields.get("alias") or ""
        if alias and alias.lower() == code.lower():
            code = alias
        disabled = link_fields.get("status") == "disabled"
        destination_url = (
            "" if disabled
            else link_fields.get("destination") or partner.destination or self._default_url
        )
        destination = (
            self._default if destination_url in ("", self._default_url)
            else Destination.parse(destination_url)
        )
        credited = partner.active and not disabled
        head = "clickId="
        tail = ""
        if credited:
            head = urlencode({"partnerId": partner_id}, quote_via=quote) + "&clickId="
            if campaign := link_fields.get("campaign"):
                tail = "&" + urlencode({"campaign": campaign}, quote_via=quote)
        return ResolvedLink(
            code=code,
            partner_id=partner_id,
            ancestors=partner.ancestors,
            campaign=link_fields.get("campaign") or None,
            sub_id=link_fields.get("sub_id") or None,
            destination_url=destination_url,
            destination=destination,
            credited=credited,
            outcome="disabled" if disabled else "credited" if credited else "suspended",
            params_head=head,
            params_tail=tail,
        )

    async def revalidate(self) -> int:
        """Load every cached code again and keep the answers; returns how many were loaded.

        The cached links stay in use until the whole reload has succeeded: if Redis fails on the
        way (it may still be loading its data after a restart), nothing is dropped and the caller
        tries again, so a reconnect never costs a person's attribution.
        """
        generation = self._generation
        codes = list(self._cache)
        fresh: dict[str, ResolvedLink | None] = {}
        for start in range(0, len(codes), REVALIDATE_CHUNK):
            chunk = codes[start : start + REVALIDATE_CHUNK]
            fresh.update(zip(chunk, await asyncio.gather(*map(self._load, chunk)), strict=True))
        if generation == self._generation:  # no change message cleared the cache meanwhile
            self._cache.update(fresh)
        return len(fresh)

    async def watch_changes(self) -> None:
        """Drop the cache on every registry change; on (re)subscribing, when messages may have
        been lost, reload what is cached (it keeps being served until the reload succeeds)."""
        while True:
            try:
                await self._feed.ping()  # connects (and maps a cluster) before subscribing
                async with self._feed.pubsub() as pubsub:
                    await pubsub.subscribe(CHANGES_CHANNEL)
                    reloaded = await self.revalidate()
                    if reloaded:
                        log.info("change feed back; %d cached links reloaded", reloaded)
                    self.subscribed.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.clear()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.subscribed.is_set():
                    log.warning("change feed lost (%s); retrying", type(exc).__name__)
                self.subscribed.clear()
            except Exception:
                # Never die silently: a dead watcher would keep suspended partners credited.
                log.exception("change feed failed; retrying")
                self.subscribed.clear()
            await asyncio.sleep(RESUBSCRIBE_DELAY_S)
