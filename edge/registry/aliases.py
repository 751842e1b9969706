"""Aliases match without regard to case: the one-time move of aliases stored in their original case
to lower-case keys, and the report of the clashes it found.

Decision (docs/notes/registry.md): where aliases differing only in case point to different links,
the oldest link keeps the alias, in every case; each younger one loses its alias (its generated code
keeps working), is logged once and listed by `GET /api/alias-clashes`. The move runs when an edge
starts (and before an alias is created), under the registry lock; it is idempotent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from edge.clock import now_ms
from edge.redis_client import as_text
from edge.registry.keys import (
    ALIAS_CLASHES,
    ALIAS_PATTERN_KEY,
    ALIASES_FOLDED,
    CHANGES_CHANNEL,
    LOCK_KEY,
    link_key,
)

log = logging.getLogger("invite.registry.aliases")

SCAN_COUNT = 1000
FOLD_LOCK_S = 120
FOLD_WAIT_S = 60
_ALIAS_PREFIX = ALIAS_PATTERN_KEY[:-1]


@dataclass(frozen=True, slots=True)
class _Claim:
    """One stored alias key and the link it names."""

    key: str
    alias: str
    partner_num: int
    link_num: int
    partner_id: str
    created_at: int

    @property
    def target(self) -> str:
        return f"{self.partner_num}:{self.link_num}"


class AliasFolding:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._folded = False

    async def ensure_folded(self) -> int:
        """Move aliases stored in their original case, once; how many keys were moved."""
        if self._folded:
            return 0
        if await self._redis.exists(ALIASES_FOLDED):
            self._folded = True
            return 0
        async with self._redis.lock(LOCK_KEY, timeout=FOLD_LOCK_S, blocking_timeout=FOLD_WAIT_S):
            moved = 0 if await self._redis.exists(ALIASES_FOLDED) else await self._fold()
        self._folded = True
        return moved

    async def clashes(self) -> list[dict[str, Any]]:
        """The aliases the move took from younger links, oldest resolution first."""
        entries = [orjson.loads(value) for value in
                   (await self._redis.hgetall(ALIAS_CLASHES)).values()]
        return sorted(entries, key=lambda entry: (entry["resolvedAt"], entry["alias"]))

    async def _fold(self) -> int:
        keys = [as_text(key) async for key in self._redis.scan_iter(
            match=ALIAS_PATTERN_KEY, count=SCAN_COUNT)]
        groups: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            alias = key[len(_ALIAS_PREFIX):]
            groups[alias.lower()].append(key)
        unfolded = {folded: group for folded, group in groups.items()
                    if any(key[len(_ALIAS_PREFIX):] != folded for key in group)}
        moved = 0
        for folded, group in sorted(unfolded.items()):
            claims = await self._claims(group)
            moved += len([key for key in group if key[len(_ALIAS_PREFIX):] != folded])
            await self._settle(folded, group, claims)
        await self._redis.set(ALIASES_FOLDED, str(now_ms()))
        if moved:
            log.info("aliases now match without regard to case: %d keys moved", moved)
            await self._redis.publish(CHANGES_CHANNEL, "aliases")
        return moved

    async def _claims(self, keys: list[str]) -> list[_Claim]:
        targets = [as_text(t) if t else "" for t in await self._redis.mget(keys)]
        claims: list[_Claim] = []
        for key, target in zip(keys, targets, strict=True):
            partner_num, _, link_num = target.partition(":")
            if not (partner_num.isdigit() and link_num.isdigit()):
                continue
            fields = await self._redis.hgetall(link_key(int(partner_num), int(link_num)))
            text = {as_text(name): as_text(value) for name, value in fields.items()}
            if not text:
                continue
            claims.append(_Claim(
                key=key, alias=key[len(_ALIAS_PREFIX):], partner_num=int(partner_num),
                link_num=int(link_num), partner_id=text.get("partner_id", ""),
                created_at=int(text.get("created_at") or 0),
            ))
        return claims

    async def _settle(self, folded: str, keys: list[str], claims: list[_Claim]) -> None:
        """One lower-case key for the oldest link; the younger ones lose the alias, reported."""
        now = now_ms()
        ordered = sorted(claims, key=lambda c: (c.created_at, c.partner_num, c.link_num))
        winner = ordered[0] if ordered else None
        losers = [claim for claim in ordered[1:] if claim.target != winner.target] if winner else []
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*keys)
            if winner is not None:
                pipe.set(_ALIAS_PREFIX + folded, winner.target)
            for loser in losers:
                pipe.hset(link_key(loser.partner_num, loser.link_num),
                          mapping={"alias": "", "alias_lost": loser.alias, "updated_at": now})
                pipe.hset(ALIAS_CLASHES, loser.alias, orjson.dumps({
                    "alias": loser.alias, "partnerId": loser.partner_id,
                    "partnerNum": loser.partner_num, "linkNumber": loser.link_num, "keptBy": {
                        "alias": winner.alias if winner else "",
                        "partnerId": winner.partner_id if winner else "",
                    },
                    "resolvedAt": now,
                }))
            await pipe.execute()
        for loser in losers:
            log.warning(
                "alias %r of partner %r's link %d lost to %r (partner %r, older): aliases match "
                "without regard to case; the link keeps its generated code",
                loser.alias, loser.partner_id, loser.link_num, winner.alias if winner else "",
                winner.partner_id if winner else "",
            )
