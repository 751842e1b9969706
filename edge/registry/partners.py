"""The partner registry in Redis: multi-level IB trees, and the links each partner owns."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from edge.errors import Conflict, InvalidInput, NotFound
from edge.registry.links import DestinationPolicy, LinkCodec, validate_alias
from edge.sso.notify import check_webhook_url

PARTNER_TYPES = ("individual", "ib", "affiliate", "campaign")
PARTNER_STATUSES = ("active", "suspended")
MAX_TREE_DEPTH = 32
MAX_NAME_LENGTH = 200
MAX_CAMPAIGN_LENGTH = 128
PARTNER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
TAG_PATTERN = re.compile(r"[A-Za-z0-9._:@ /+-]{1,128}")

CHANGES_CHANNEL = "invite:changes"
# Every registry key shares one hash tag, so that on Redis Cluster the multi-key transactions of
# a partner edit stay on one slot. The registry is small; the click stream has its own slot.
_PREFIX = "invite:{registry}:"
_LOCK_KEY = _PREFIX + "lock"
_PARTNER_SEQ = _PREFIX + "pseq"
_PARTNER_BY_NUM = _PREFIX + "pnum"
_CODE_SALT = _PREFIX + "code-salt"


def partner_key(partner_id: str) -> str:
    return f"{_PREFIX}p:{partner_id}"


def children_key(partner_id: str) -> str:
    return f"{_PREFIX}children:{partner_id}"


def link_key(partner_num: int, link_num: int) -> str:
    return f"{_PREFIX}l:{partner_num}:{link_num}"


def link_seq_key(partner_num: int) -> str:
    return f"{_PREFIX}lseq:{partner_num}"


def alias_key(alias: str) -> str:
    return f"{_PREFIX}alias:{alias}"


def ctid_user_key(user_id: int) -> str:
    """The partner whose own cTrader ID user this is (cTrader's in-app invitations name it)."""
    return f"{_PREFIX}ctid:{user_id}"


@dataclass(frozen=True, slots=True)
class Partner:
    partner_id: str
    num: int
    parent_id: str | None
    type: str
    status: str
    name: str | None
    destination: str | None
    ancestors: tuple[str, ...]  # root first, without the partner itself
    created_at: int
    updated_at: int
    webhook_url: str | None = None
    ctid_user_id: int | None = None

    @property
    def level(self) -> int:
        return len(self.ancestors) + 1

    @property
    def active(self) -> bool:
        return self.status == "active"

    def to_json(self) -> dict[str, Any]:
        return {
            "partnerId": self.partner_id,
            "parentPartnerId": self.parent_id,
            "type": self.type,
            "status": self.status,
            "name": self.name,
            "destination": self.destination,
            "level": self.level,
            "ancestors": list(self.ancestors),
            "webhookUrl": self.webhook_url,
            "ctidUserId": self.ctid_user_id,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    @classmethod
    def from_hash(cls, partner_id: str, fields: dict[str, str]) -> Partner:
        return cls(
            partner_id=partner_id,
            num=int(fields["num"]),
            parent_id=fields.get("parent") or None,
            type=fields.get("type") or "individual",
            status=fields.get("status") or "active",
            name=fields.get("name") or None,
            destination=fields.get("destination") or None,
            ancestors=tuple(orjson.loads(fields.get("ancestors") or "[]")),
            created_at=int(fields.get("created_at") or 0),
            updated_at=int(fields.get("updated_at") or 0),
            webhook_url=fields.get("webhook_url") or None,
            ctid_user_id=int(fields["ctid_user"]) if fields.get("ctid_user") else None,
        )


@dataclass(frozen=True, slots=True)
class Link:
    code: str
    partner_num: int
    link_num: int
    partner_id: str
    alias: str | None
    campaign: str | None
    sub_id: str | None
    destination: str | None
    created_at: int

    def to_json(self, base_url: str) -> dict[str, Any]:
        shown = self.alias or self.code
        return {
            "code": shown,
            "generatedCode": self.code,
            "alias": self.alias,
            "url": f"{base_url}/r/{shown}",
            "partnerId": self.partner_id,
            "campaign": self.campaign,
            "subId": self.sub_id,
            "destination": self.destination,
            "createdAt": self.created_at,
        }

    @classmethod
    def from_hash(cls, codec: LinkCodec, fields: dict[str, str]) -> Link:
        partner_num, link_num = int(fields["pnum"]), int(fields["lnum"])
        return cls(
            code=codec.encode(partner_num, link_num),
            partner_num=partner_num,
            link_num=link_num,
            partner_id=fields["partner_id"],
            alias=fields.get("alias") or None,
            campaign=fields.get("campaign") or None,
            sub_id=fields.get("sub_id") or None,
            destination=fields.get("destination") or None,
            created_at=int(fields.get("created_at") or 0),
        )


async def read_hash(redis: Redis, key: str) -> dict[str, str]:
    """HGETALL as text (the registry's clients decode responses)."""
    fields: dict[Any, Any] = await redis.hgetall(key)
    return {str(name): str(value) for name, value in fields.items()}


def check_partner_id(partner_id: str) -> str:
    if not PARTNER_ID_PATTERN.fullmatch(partner_id):
        raise InvalidInput(
            f"partnerId {partner_id[:80]!r} must be 1-64 characters of letters, digits and ._:@- "
            "starting with a letter or digit"
        )
    return partner_id


def _optional_text(body: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(f"{key} must be 1-128 characters of letters, digits, spaces and ._:@/+-")
    return value


def _choice(body: dict[str, Any], key: str, choices: tuple[str, ...]) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if value not in choices:
        raise InvalidInput(f"{key} must be one of {', '.join(choices)}")
    return str(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


class PartnerRegistry:
    """Reads and writes partners and links; every write publishes a change for the edge caches."""

    def __init__(self, redis: Redis, secret: str, destinations: DestinationPolicy) -> None:
        self._redis = redis
        self._salt_seed = hmac.new(secret.encode(), b"invite-edge/code-salt", hashlib.sha256)
        self._codec: LinkCodec | None = None
        self._destinations = destinations

    async def codec(self) -> LinkCodec:
        """The short-code codec; its salt is fixed in Redis when first needed.

        Derived from the signing secret of that moment and then kept, so that rotating
        INVITE_SECRET never changes the codes of links already shared.
        """
        if self._codec is None:
            await self._redis.set(_CODE_SALT, self._salt_seed.hexdigest(), nx=True)
            salt = await self._redis.get(_CODE_SALT)
            if not salt:
                raise RedisError(f"{_CODE_SALT} vanished right after it was set")
            self._codec = LinkCodec(str(salt))
        return self._codec

    @property
    def destinations(self) -> DestinationPolicy:
        return self._destinations

    async def get(self, partner_id: str) -> Partner:
        fields = await read_hash(self._redis, partner_key(partner_id))
        if not fields:
            raise NotFound(f"partner {partner_id!r} does not exist: create it with PUT")
        return Partner.from_hash(partner_id, fields)

    async def find(self, partner_id: str) -> Partner | None:
        fields = await read_hash(self._redis, partner_key(partner_id))
        return Partner.from_hash(partner_id, fields) if fields else None

    async def find_by_ctid_user(self, user_id: int) -> Partner | None:
        partner_id = await self._redis.get(ctid_user_key(user_id))
        return await self.find(str(partner_id)) if partner_id else None

    async def upsert(self, partner_id: str, body: dict[str, Any]) -> tuple[Partner, bool]:
        """Create or update a partner; returns it and whether it was created."""
        check_partner_id(partner_id)
        unknown = set(body) - {
            "parentPartnerId", "name", "type", "status", "destination", "webhookUrl", "ctidUserId"
        }
        if unknown:
            raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
        partner_type = _choice(body, "type", PARTNER_TYPES)
        status = _choice(body, "status", PARTNER_STATUSES)
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME_LENGTH):
            raise InvalidInput(f"name must be a string of at most {MAX_NAME_LENGTH} characters")
        destination = body.get("destination")
        if destination is not None:
            if not isinstance(destination, str):
                raise InvalidInput("destination must be a URL string")
            destination = self._destinations.check(destination)
        webhook_url = body.get("webhookUrl")
        if webhook_url is not None:
            if not isinstance(webhook_url, str):
                raise InvalidInput("webhookUrl must be an http(s) URL string or null")
            webhook_url = check_webhook_url(webhook_url)
        ctid_user = body.get("ctidUserId")
        if ctid_user is not None and (
            not isinstance(ctid_user, int) or isinstance(ctid_user, bool) or ctid_user < 1
        ):
            raise InvalidInput("ctidUserId must be a positive whole number (a cTrader ID userId)")

        # Hierarchy edits are rare and must not interleave (two re-parentings could build a cycle).
        async with self._redis.lock(_LOCK_KEY, timeout=30, blocking_timeout=10):
            existing = await self.find(partner_id)
            now = _now_ms()
            parent_given = "parentPartnerId" in body
            parent_id = body.get("parentPartnerId") if parent_given else (
                existing.parent_id if existing else None
            )
            if parent_id is not None and not isinstance(parent_id, str):
                raise InvalidInput("parentPartnerId must be a string or null")
            ancestors = await self._ancestors_for(partner_id, parent_id or None)
            fields: dict[str, str] = {
                "parent": parent_id or "",
                "ancestors": orjson.dumps(ancestors).decode(),
                "updated_at": str(now),
            }
            if partner_type is not None or existing is None:
                fields["type"] = partner_type or "individual"
            if status is not None or existing is None:
                fields["status"] = status or "active"
            if name is not None:
                fields["name"] = name
            if "destination" in body:
                fields["destination"] = destination or ""
            if "webhookUrl" in body:
                fields["webhook_url"] = webhook_url or ""
            old_ctid = existing.ctid_user_id if existing else None
            if "ctidUserId" in body:
                fields["ctid_user"] = str(ctid_user or "")
                if ctid_user is not None and ctid_user != old_ctid:
                    holder = await self._redis.get(ctid_user_key(ctid_user))
                    if holder and holder != partner_id:
                        raise Conflict(f"ctidUserId {ctid_user} belongs to partner {holder!r}")
            if existing is None:
                fields["num"] = str(await self._redis.incr(_PARTNER_SEQ))
                fields["created_at"] = str(now)
            # A re-parenting moves the whole subtree: its new chains are worked out and checked
            # before anything is written, then written with the partner in one transaction, so a
            # refused move changes nothing.
            moved = (
                await self._subtree_chains(partner_id, [*ancestors, partner_id])
                if existing is not None and tuple(ancestors) != existing.ancestors else []
            )
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(partner_key(partner_id), mapping=dict[Any, Any](fields))
                if existing is None:
                    pipe.hset(_PARTNER_BY_NUM, fields["num"], partner_id)
                if "ctidUserId" in body and ctid_user != old_ctid:
                    if old_ctid is not None:
                        pipe.delete(ctid_user_key(old_ctid))
                    if ctid_user is not None:
                        pipe.set(ctid_user_key(ctid_user), partner_id)
                old_parent = existing.parent_id if existing else None
                if old_parent != (parent_id or None):
                    if old_parent:
                        pipe.srem(children_key(old_parent), partner_id)
                    if parent_id:
                        pipe.sadd(children_key(parent_id), partner_id)
                for descendant, chain in moved:
                    pipe.hset(partner_key(descendant), "ancestors", orjson.dumps(chain).decode())
                await pipe.execute()
        await self._redis.publish(CHANGES_CHANNEL, f"p:{partner_id}")
        return await self.get(partner_id), existing is None

    async def _ancestors_for(self, partner_id: str, parent_id: str | None) -> list[str]:
        if parent_id is None:
            return []
        if parent_id == partner_id:
            raise InvalidInput(f"partner {partner_id!r} cannot be its own parent")
        parent = await self.find(parent_id)
        if parent is None:
            raise InvalidInput(f"parentPartnerId {parent_id!r} does not exist: create it first")
        if partner_id in parent.ancestors:
            raise InvalidInput(
                f"parentPartnerId {parent_id!r} is below {partner_id!r} in the tree: "
                "that would make a cycle"
            )
        ancestors = [*parent.ancestors, parent_id]
        if len(ancestors) >= MAX_TREE_DEPTH:
            raise InvalidInput(f"the tree would be deeper than {MAX_TREE_DEPTH} levels")
        return ancestors

    async def _subtree_chains(
        self, partner_id: str, ancestors: list[str]
    ) -> list[tuple[str, list[str]]]:
        """Every descendant of a moved partner with its new ancestor chain (root first); 422 if
        any of them would sit deeper than MAX_TREE_DEPTH. Reads only."""
        chains: list[tuple[str, list[str]]] = []
        frontier = [(partner_id, ancestors)]
        while frontier:
            parent_id, chain = frontier.pop()
            for child in sorted(map(str, await self._redis.smembers(children_key(parent_id)))):
                if len(chain) >= MAX_TREE_DEPTH:
                    raise InvalidInput(
                        f"the tree would be deeper than {MAX_TREE_DEPTH} levels (partner "
                        f"{child!r} would be at level {len(chain) + 1})"
                    )
                chains.append((child, chain))
                frontier.append((child, [*chain, child]))
        return chains

    async def create_link(self, partner_id: str, body: dict[str, Any]) -> Link:
        unknown = set(body) - {"campaign", "subId", "destination", "alias"}
        if unknown:
            raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")
        partner = await self.get(partner_id)
        campaign = _optional_text(body, "campaign", TAG_PATTERN)
        sub_id = _optional_text(body, "subId", TAG_PATTERN)
        destination = body.get("destination")
        if destination is not None:
            if not isinstance(destination, str):
                raise InvalidInput("destination must be a URL string")
            destination = self._destinations.check(destination)
        alias = body.get("alias")
        if alias is not None:
            if not isinstance(alias, str):
                raise InvalidInput("alias must be a string")
            alias = validate_alias(alias, await self.codec())
        link_num = int(await self._redis.incr(link_seq_key(partner.num)))
        fields = {
            "pnum": str(partner.num),
            "lnum": str(link_num),
            "partner_id": partner_id,
            "alias": alias or "",
            "campaign": campaign or "",
            "sub_id": sub_id or "",
            "destination": destination or "",
            "created_at": str(_now_ms()),
        }
        if alias is not None and not await self._redis.set(
            alias_key(alias), f"{partner.num}:{link_num}", nx=True
        ):
            raise Conflict(f"alias {alias!r} is taken: choose another")
        await self._redis.hset(link_key(partner.num, link_num), mapping=dict[Any, Any](fields))
        link = Link.from_hash(await self.codec(), fields)
        await self._redis.publish(CHANGES_CHANNEL, f"l:{link.alias or link.code}")
        return link

    async def get_link(self, code: str) -> Link:
        numbers = await self.link_numbers(code)
        fields = await read_hash(self._redis, link_key(*numbers)) if numbers else {}
        if not fields:
            raise NotFound(f"link {code[:64]!r} does not exist")
        return Link.from_hash(await self.codec(), fields)

    async def link_numbers(self, code: str) -> tuple[int, int] | None:
        """The (partner, link) numbers a code or alias names, without checking the link exists."""
        numbers = (await self.codec()).decode(code)
        if numbers is not None:
            return numbers
        target = await self._redis.get(alias_key(code))
        if not target:
            return None
        partner_num, _, link_num = str(target).partition(":")
        return int(partner_num), int(link_num)

    async def partner_id_by_num(self, num: int) -> str | None:
        value = await self._redis.hget(_PARTNER_BY_NUM, str(num))
        return str(value) if value else None
