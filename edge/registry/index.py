"""The registry's listing indexes, kept in the transaction of every partner write: partners in id
order (all of them, the roots, each partner's children) and the tree's roll-up counts.

An index entry is `{partnerId}\\0{status}\\0{casefolded name}` in a sorted set whose scores are all
0, so ZRANGEBYLEX reads partners in id order (no id contains "\\0", which sorts before every other
character) and a search reads its candidates from the index alone. The hashes stay the truth:
readers check what they return against them, and `RegistryIndex.ensure` rebuilds the indexes
when they were never built or do not count the partners the registry holds.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from edge.redis_client import as_text
from edge.registry.keys import (
    DESCENDANT_COUNTS,
    INDEX_VERSION,
    LINK_COUNTS,
    LOCK_KEY,
    PARTNER_BY_NUM,
    PARTNER_INDEX,
    PREFIX,
    ROOT_INDEX,
    kids_index_key,
    partner_key,
)
from edge.registry.model import Partner

log = logging.getLogger("invite.registry.index")

# Raise when the entry format or what the indexes hold changes: every index is rebuilt once.
FORMAT = "1"
SCAN_COUNT = 1000
# Building the indexes of 100k partners takes seconds; other writers wait meanwhile.
BUILD_LOCK_S = 300
BUILD_WAIT_S = 60
_KIDS_PATTERN = kids_index_key("*")
_LINK_PATTERN = f"{PREFIX}l:*"


@dataclass(frozen=True, slots=True)
class Entry:
    partner_id: str
    status: str
    folded_name: str

    @classmethod
    def of(cls, partner: Partner) -> Entry:
        return cls(partner.partner_id, partner.status, (partner.name or "").casefold())

    @classmethod
    def parse(cls, member: str) -> Entry:
        partner_id, _, rest = member.partition("\0")
        status, _, folded_name = rest.partition("\0")
        return cls(partner_id, status, folded_name)

    @property
    def member(self) -> str:
        return f"{self.partner_id}\0{self.status}\0{self.folded_name}"


def after_bound(partner_id: str) -> str:
    """The ZRANGEBYLEX bound just past every entry of `partner_id`."""
    return f"({partner_id}\x01"


def siblings_key(parent_id: str | None) -> str:
    return kids_index_key(parent_id) if parent_id else ROOT_INDEX


def queue_partner_write(
    pipe: Pipeline, before: Partner | None, after: Partner, moved_subtree: int
) -> None:
    """Queue the index changes of one partner write. `moved_subtree`: how many partners moved with
    it to new ancestors (itself and its descendants; 0 when its ancestors stay)."""
    new = Entry.of(after)
    if before is not None:
        old = Entry.of(before)
        if old != new or before.parent_id != after.parent_id:
            pipe.zrem(PARTNER_INDEX, old.member)
            pipe.zrem(siblings_key(before.parent_id), old.member)
    pipe.zadd(PARTNER_INDEX, {new.member: 0})
    pipe.zadd(siblings_key(after.parent_id), {new.member: 0})
    if moved_subtree:
        for ancestor in before.ancestors if before is not None else ():
            pipe.hincrby(DESCENDANT_COUNTS, ancestor, -moved_subtree)
        for ancestor in after.ancestors:
            pipe.hincrby(DESCENDANT_COUNTS, ancestor, moved_subtree)


def queue_link_created(pipe: Pipeline, partner_id: str) -> None:
    pipe.hincrby(LINK_COUNTS, partner_id, 1)


class RegistryIndex:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def ensure(self) -> None:
        """Build the indexes unless they are there and count every partner (one round trip)."""
        if not await self._stale():
            return
        async with self._redis.lock(LOCK_KEY, timeout=BUILD_LOCK_S, blocking_timeout=BUILD_WAIT_S):
            if await self._stale():
                await self.build()

    async def _stale(self) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(INDEX_VERSION)
            pipe.hlen(PARTNER_BY_NUM)
            pipe.zcard(PARTNER_INDEX)
            version, partners, indexed = await pipe.execute()
        return version is None or as_text(version) != FORMAT or int(partners) != int(indexed)

    async def build(self) -> None:
        """Rebuild every index from the partner and link hashes; call it holding the registry
        lock. Entries only change where they differ, so readers meanwhile see whole lists."""
        partners = await self._all_partners()
        wanted: dict[str, set[str]] = defaultdict(set)
        wanted[PARTNER_INDEX] = set()
        wanted[ROOT_INDEX] = set()
        descendants: Counter[str] = Counter()
        for partner in partners:
            member = Entry.of(partner).member
            wanted[PARTNER_INDEX].add(member)
            wanted[siblings_key(partner.parent_id)].add(member)
            descendants.update(partner.ancestors)
        link_counts = await self._link_counts({p.num: p.partner_id for p in partners})

        kids_keys = [as_text(key) async for key in self._redis.scan_iter(
            match=_KIDS_PATTERN, count=SCAN_COUNT)]
        keys = sorted({*kids_keys, *wanted})
        for start in range(0, len(keys), SCAN_COUNT):
            await self._converge(keys[start : start + SCAN_COUNT], wanted)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(DESCENDANT_COUNTS, LINK_COUNTS)
            if descendants:
                pipe.hset(DESCENDANT_COUNTS, mapping=dict[Any, Any](descendants))
            if link_counts:
                pipe.hset(LINK_COUNTS, mapping=dict[Any, Any](link_counts))
            pipe.set(INDEX_VERSION, FORMAT)
            await pipe.execute()
        log.info("registry indexes built: %d partners, %d links",
                 len(partners), sum(link_counts.values()))

    async def _converge(self, keys: list[str], wanted: dict[str, set[str]]) -> None:
        """Make each sorted set of `keys` hold exactly its wanted members."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrange(key, 0, -1)
            replies = await pipe.execute()
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, reply in zip(keys, replies, strict=True):
                present = {as_text(member) for member in reply}
                target = wanted.get(key, set())
                if extra := present - target:
                    pipe.zrem(key, *extra)
                if missing := target - present:
                    pipe.zadd(key, dict.fromkeys(missing, 0))
            await pipe.execute()

    async def _all_partners(self) -> list[Partner]:
        prefix = partner_key("")
        keys = [as_text(key) async for key in self._redis.scan_iter(
            match=partner_key("*"), count=SCAN_COUNT)]
        partners: list[Partner] = []
        for start in range(0, len(keys), SCAN_COUNT):
            chunk = keys[start : start + SCAN_COUNT]
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.hgetall(key)
                replies = await pipe.execute()
            for key, fields in zip(chunk, replies, strict=True):
                text = {as_text(name): as_text(value) for name, value in fields.items()}
                if text.get("num"):
                    partners.append(Partner.from_hash(key[len(prefix):], text))
        return partners

    async def _link_counts(self, partner_by_num: dict[int, str]) -> Counter[str]:
        counts: Counter[str] = Counter()
        prefix = len(_LINK_PATTERN) - 1
        async for key in self._redis.scan_iter(match=_LINK_PATTERN, count=SCAN_COUNT):
            partner_num, _, link_num = as_text(key)[prefix:].partition(":")
            if partner_num.isdigit() and link_num.isdigit():
                partner_id = partner_by_num.get(int(partner_num))
                if partner_id is not None:
                    counts[partner_id] += 1
        return counts
