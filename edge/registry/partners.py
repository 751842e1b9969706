"""The partner registry in Redis: multi-level IB trees, and the links each partner owns."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from edge.clock import now_ms
from edge.errors import Conflict, InvalidInput, NotFound
from edge.registry import listing
from edge.registry.aliases import AliasFolding
from edge.registry.destinations import DestinationPolicy, check_webhook_url
from edge.registry.edits import KEEP, LinkEdit, LinkPatch, PartnerEdit
from edge.registry.index import RegistryIndex, queue_link_created, queue_partner_write
from edge.registry.keys import (
    CHANGES_CHANNEL,
    CODE_SALT,
    HISTORY_STREAM,
    LOCK_KEY,
    PARTNER_BY_NUM,
    PARTNER_SEQ,
    alias_key,
    children_key,
    ctid_user_key,
    link_key,
    link_seq_key,
    partner_key,
    plan_key,
)
from edge.registry.links import LinkCodec, is_code_syntax, validate_alias
from edge.registry.listing import PartnerSummary, Subtree
from edge.registry.model import MAX_TREE_DEPTH, Link, Partner, check_partner_id
from edge.registry.paging import DEFAULT_TREE_DEPTH, LinkQuery, Page, PartnerQuery
from edge.streams import FIELD

TOKENS_NOT_BEFORE = "tokens_not_before"  # partner hash field, ms: partner tokens issued earlier


async def read_hash(redis: Redis, key: str) -> dict[str, str]:
    """HGETALL as text (the registry's clients decode responses)."""
    fields: dict[Any, Any] = await redis.hgetall(key)
    return {str(name): str(value) for name, value in fields.items()}


class PartnerRegistry:
    """Reads and writes partners and links; every write publishes a change for the edge caches."""

    def __init__(self, redis: Redis, secret: str, destinations: DestinationPolicy) -> None:
        self._redis = redis
        self._salt_seed = hmac.new(secret.encode(), b"invite-edge/code-salt", hashlib.sha256)
        self._codec: LinkCodec | None = None
        self._destinations = destinations
        self.index = RegistryIndex(redis)
        self.aliases = AliasFolding(redis)

    async def codec(self) -> LinkCodec:
        """The short-code codec; its salt is fixed in Redis when first needed.

        Derived from the signing secret of that moment and then kept, so that rotating
        INVITE_SECRET never changes the codes of links already shared.
        """
        if self._codec is None:
            await self._redis.set(CODE_SALT, self._salt_seed.hexdigest(), nx=True)
            salt = await self._redis.get(CODE_SALT)
            if not salt:
                raise RedisError(f"{CODE_SALT} vanished right after it was set")
            self._codec = LinkCodec(str(salt))
        return self._codec

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

    async def upsert(self, partner_id: str, edit: PartnerEdit) -> tuple[Partner, bool]:
        """Create or update a partner; returns it and whether it was created."""
        check_partner_id(partner_id)
        destination = edit.destination
        if isinstance(destination, str):
            destination = self._destinations.check(destination)
        webhook_url = edit.webhook_url
        if isinstance(webhook_url, str):
            webhook_url = check_webhook_url(webhook_url)
        ctid_user = edit.ctid_user_id

        await self.index.ensure()
        async with self._redis.lock(LOCK_KEY, timeout=30, blocking_timeout=10):
            stored = await read_hash(self._redis, partner_key(partner_id))
            existing = Partner.from_hash(partner_id, stored) if stored else None
            now = now_ms()
            old_parent = existing.parent_id if existing else None
            parent_id = old_parent if edit.parent_id is KEEP else edit.parent_id
            ancestors = await self._ancestors_for(partner_id, parent_id)
            fields: dict[str, str] = {
                "parent": parent_id or "",
                "ancestors": orjson.dumps(ancestors).decode(),
                "updated_at": str(now),
            }
            if edit.type is not None or existing is None:
                fields["type"] = edit.type or "individual"
            if edit.status is not None or existing is None:
                fields["status"] = edit.status or "active"
            if edit.name is not None:
                fields["name"] = edit.name
            if destination is not KEEP:
                fields["destination"] = destination or ""
            if webhook_url is not KEEP:
                fields["webhook_url"] = webhook_url or ""
            old_ctid = existing.ctid_user_id if existing else None
            ctid_changes = ctid_user is not KEEP and ctid_user != old_ctid
            if ctid_user is not KEEP:
                fields["ctid_user"] = str(ctid_user or "")
                if ctid_user is not None and ctid_changes:
                    holder = await self._redis.get(ctid_user_key(ctid_user))
                    if holder and holder != partner_id:
                        raise Conflict(f"ctidUserId {ctid_user} belongs to partner {holder!r}")
            if edit.plan_id is not KEEP:
                if edit.plan_id is not None and not await self._redis.exists(
                    plan_key(edit.plan_id)
                ):
                    raise InvalidInput(
                        f"planId {edit.plan_id!r} does not exist: create it with "
                        f"PUT /api/plans/{edit.plan_id}"
                    )
                fields["plan"] = edit.plan_id or ""
            if existing is None:
                fields["num"] = str(await self._redis.incr(PARTNER_SEQ))
                fields["created_at"] = str(now)
            # A re-parenting moves the whole subtree: its new chains are worked out and checked
            # before anything is written, then written with the partner in one transaction, so a
            # refused move changes nothing.
            moved = (
                await self._subtree_chains(partner_id, [*ancestors, partner_id])
                if existing is not None and tuple(ancestors) != existing.ancestors else []
            )
            updated = Partner.from_hash(partner_id, {**stored, **fields})
            if existing is None:
                moved_subtree = 1
            else:
                moved_subtree = 1 + len(moved) if updated.ancestors != existing.ancestors else 0
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(partner_key(partner_id), mapping=dict[Any, Any](fields))
                queue_partner_write(pipe, existing, updated, moved_subtree)
                if existing is None:
                    pipe.hset(PARTNER_BY_NUM, fields["num"], partner_id)
                if ctid_changes:
                    if old_ctid is not None:
                        pipe.delete(ctid_user_key(old_ctid))
                    if isinstance(ctid_user, int):
                        pipe.set(ctid_user_key(ctid_user), partner_id)
                if old_parent != parent_id:
                    if old_parent:
                        pipe.srem(children_key(old_parent), partner_id)
                    if parent_id:
                        pipe.sadd(children_key(parent_id), partner_id)
                for descendant, chain in moved:
                    pipe.hset(partner_key(descendant), "ancestors", orjson.dumps(chain).decode())
                for entry in _history(partner_id, now, fields, existing, moved):
                    pipe.xadd(HISTORY_STREAM, {FIELD: orjson.dumps(entry)})
                await pipe.execute()
        await self._redis.publish(CHANGES_CHANNEL, f"p:{partner_id}")
        return await self.get(partner_id), existing is None

    async def revoke_tokens(self, partner_id: str) -> int:
        """Stamp the partner so that every token issued to it until now is refused; the stamp."""
        partner = await self.get(partner_id)
        not_before = now_ms() + 1
        await self._redis.hset(
            partner_key(partner.partner_id),
            mapping={TOKENS_NOT_BEFORE: not_before, "updated_at": not_before},
        )
        await self._redis.publish(CHANGES_CHANNEL, f"p:{partner.partner_id}")
        return not_before

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

    async def create_link(self, partner_id: str, edit: LinkEdit) -> Link:
        """A new link of the partner; 409 when its alias is taken in any case."""
        partner = await self.get(partner_id)
        destination = (
            self._destinations.check(edit.destination) if edit.destination is not None else None
        )
        alias = validate_alias(edit.alias, await self.codec()) if edit.alias is not None else None
        await self.index.ensure()
        if alias is not None:
            await self.aliases.ensure_folded()
        link_num = int(await self._redis.incr(link_seq_key(partner.num)))
        fields = {
            "pnum": str(partner.num),
            "lnum": str(link_num),
            "partner_id": partner_id,
            "alias": alias or "",
            "campaign": edit.campaign or "",
            "sub_id": edit.sub_id or "",
            "destination": destination or "",
            "created_at": str(now_ms()),
        }
        if alias is not None and not await self._redis.set(
            alias_key(alias), f"{partner.num}:{link_num}", nx=True
        ):
            raise Conflict(
                f"alias {alias!r} is taken (aliases match without regard to case): choose another"
            )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(link_key(partner.num, link_num), mapping=dict[Any, Any](fields))
            queue_link_created(pipe, partner_id)
            await pipe.execute()
        link = Link.from_hash(await self.codec(), fields)
        await self._redis.publish(CHANGES_CHANNEL, f"l:{link.alias or link.code}")
        return link

    async def update_link(self, code: str, patch: LinkPatch) -> Link:
        """Disable or enable a link, or change its destination (within the allow-list)."""
        numbers = await self.link_numbers(code)
        stored = await read_hash(self._redis, link_key(*numbers)) if numbers else {}
        if not numbers or not stored:
            raise NotFound(f"link {code[:64]!r} does not exist")
        fields = {"updated_at": str(now_ms())}
        if patch.status is not None:
            fields["status"] = patch.status
        if isinstance(patch.destination, str):
            fields["destination"] = self._destinations.check(patch.destination)
        elif patch.destination is None:
            fields["destination"] = ""
        await self._redis.hset(link_key(*numbers), mapping=dict[Any, Any](fields))
        link = Link.from_hash(await self.codec(), {**stored, **fields})
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
        if not is_code_syntax(code):
            return None
        numbers = (await self.codec()).decode(code)
        if numbers is not None:
            return numbers
        target = await self._redis.get(alias_key(code))
        if not target:
            return None
        partner_num, _, link_num = str(target).partition(":")
        return int(partner_num), int(link_num)

    async def partner_id_by_num(self, num: int) -> str | None:
        value = await self._redis.hget(PARTNER_BY_NUM, str(num))
        return str(value) if value else None

    # Reads in pages (edge/registry/listing.py), for the admin API, the CLI and the portal.

    async def list_partners(self, query: PartnerQuery) -> Page[PartnerSummary]:
        if query.parent_id is not None and not await self.find(query.parent_id):
            raise NotFound(f"parent {query.parent_id!r} does not exist")
        await self.index.ensure()
        return await listing.list_partners(self._redis, query)

    async def list_links(self, partner_id: str, query: LinkQuery | None = None) -> Page[Link]:
        """A partner's links, newest first; 404 for an unknown partner."""
        partner = await self.get(check_partner_id(partner_id))
        return await listing.list_links(
            self._redis, await self.codec(), partner, query or LinkQuery()
        )

    async def subtree(self, partner_id: str, depth: int = DEFAULT_TREE_DEPTH) -> Subtree:
        """The partner and its descendants `depth` levels down, with roll-up counts."""
        if not 1 <= depth <= MAX_TREE_DEPTH:
            raise InvalidInput(f"depth must be a whole number from 1 to {MAX_TREE_DEPTH}")
        await self.index.ensure()
        return await listing.subtree(self._redis, check_partner_id(partner_id), depth)

    async def alias_clashes(self) -> list[dict[str, Any]]:
        """The aliases that were taken from younger links when aliases stopped minding case."""
        codec = await self.codec()
        return [
            {"alias": clash["alias"], "partnerId": clash["partnerId"],
             "code": codec.encode(clash["partnerNum"], clash["linkNumber"]),
             "keptBy": clash["keptBy"], "resolvedAt": clash["resolvedAt"]}
            for clash in await self.aliases.clashes()
        ]

    async def prepare(self) -> None:
        """The one-time upkeep of stored data: aliases folded to lower case, indexes built."""
        await self.aliases.ensure_folded()
        await self.index.ensure()


def _history(
    partner_id: str, now: int, fields: dict[str, str], existing: Partner | None,
    moved: list[tuple[str, list[str]]],
) -> list[dict[str, Any]]:
    """The history entries of one write: the partner's state after it (what the ledger reads of
    a partner at an event), and the new ancestors of each descendant a re-parenting moved."""
    state = {
        "p": partner_id, "ts": now, "parent": fields["parent"],
        "ancestors": orjson.loads(fields["ancestors"]),
        "status": fields.get("status", existing.status if existing else "active"),
        "plan": fields.get("plan", (existing.plan_id or "") if existing else ""),
        "ctid": fields.get("ctid_user", str(existing.ctid_user_id or "") if existing else ""),
    }
    return [state, *({"p": descendant, "ts": now, "ancestors": chain}
                     for descendant, chain in moved)]
