"""The registry read in pages: partners (search, parent, status) from the listing indexes, a
partner's links newest first, and a partner's subtree with its roll-up counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from edge.errors import NotFound
from edge.redis_client import as_text
from edge.registry.index import Entry, after_bound, siblings_key
from edge.registry.keys import (
    DESCENDANT_COUNTS,
    LINK_COUNTS,
    PARTNER_INDEX,
    kids_index_key,
    link_key,
    link_seq_key,
    partner_key,
)
from edge.registry.links import LinkCodec
from edge.registry.model import Link, Partner
from edge.registry.paging import LinkQuery, Page, PartnerQuery, encode_cursor

# A filtered page reads at most this many index entries (or links); past that it comes back
# short, with a nextCursor to go on from, so no request holds Redis or the edge for long.
MAX_SCANNED = 250_000
INDEX_CHUNK = 5000
LINK_CHUNK = 200
MAX_TREE_NODES = 2000


@dataclass(frozen=True, slots=True)
class PartnerSummary:
    """A partner with its roll-up counts."""

    partner: Partner
    child_count: int
    descendant_count: int
    link_count: int

    def to_json(self) -> dict[str, Any]:
        return {
            **self.partner.to_json(),
            "childCount": self.child_count,
            "descendantCount": self.descendant_count,
            "linkCount": self.link_count,
        }

    def node_json(self, children: list[dict[str, Any]]) -> dict[str, Any]:
        partner = self.partner
        return {
            "partnerId": partner.partner_id, "name": partner.name, "type": partner.type,
            "status": partner.status, "level": partner.level, "linkCount": self.link_count,
            "childCount": self.child_count, "descendantCount": self.descendant_count,
            "children": children,
        }


async def summaries(redis: Redis, partner_ids: list[str]) -> list[PartnerSummary]:
    """The partners named, with their counts, in that order; ids without a partner are left out."""
    if not partner_ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(DESCENDANT_COUNTS, partner_ids)
        pipe.hmget(LINK_COUNTS, partner_ids)
        for partner_id in partner_ids:
            pipe.zcard(kids_index_key(partner_id))
            pipe.hgetall(partner_key(partner_id))
        replies = await pipe.execute()
    descendants, links, rest = replies[0], replies[1], replies[2:]
    found: list[PartnerSummary] = []
    for index, partner_id in enumerate(partner_ids):
        children, fields = rest[2 * index], rest[2 * index + 1]
        if not fields:
            continue
        text = {as_text(name): as_text(value) for name, value in fields.items()}
        found.append(PartnerSummary(
            Partner.from_hash(partner_id, text), int(children),
            max(0, int(descendants[index] or 0)), int(links[index] or 0),
        ))
    return found


def _matches(query: PartnerQuery, status: str, partner_id: str, folded_name: str) -> bool:
    if query.status is not None and status != query.status:
        return False
    wanted = query.folded_search
    return not wanted or wanted in partner_id.casefold() or wanted in folded_name


async def list_partners(redis: Redis, query: PartnerQuery) -> Page[PartnerSummary]:
    """One page of partners in id order; the caller has checked the parent exists."""
    if query.parent_id is not None:
        source = kids_index_key(query.parent_id)
    else:
        source = siblings_key(None) if query.roots else PARTNER_INDEX
    wanted = query.folded_search
    chunk = INDEX_CHUNK if query.status is not None or wanted else query.limit + 1
    low = after_bound(query.after) if query.after else "-"
    matched: list[str] = []
    last_seen, scanned, exhausted = query.after, 0, False
    while len(matched) <= query.limit and scanned < MAX_SCANNED:
        members = [as_text(m) for m in await redis.zrangebylex(source, low, "+", 0, chunk)]
        for member in members:
            scanned += 1
            # Most entries of a search fail here, in C: the id and name are in the entry.
            if wanted and wanted not in member.casefold():
                continue
            entry = Entry.parse(member)
            if matched and entry.partner_id == matched[-1]:
                continue  # a stale second entry of one partner
            if _matches(query, entry.status, entry.partner_id, entry.folded_name):
                matched.append(entry.partner_id)
                if len(matched) > query.limit:
                    break
        if members:
            last_seen = Entry.parse(members[-1]).partner_id
        if len(members) < chunk:
            exhausted = True
            break
        low = "(" + members[-1]
    shown = matched[: query.limit]
    if len(matched) > query.limit:
        next_cursor: str | None = encode_cursor("partners", shown[-1])
    elif exhausted or last_seen is None:
        next_cursor = None
    else:
        next_cursor = encode_cursor("partners", last_seen)
    items = [
        summary for summary in await summaries(redis, shown)
        if _still_matches(query, summary.partner)
    ]
    return Page(items, next_cursor)


def _still_matches(query: PartnerQuery, partner: Partner) -> bool:
    """The hash is the truth: an index entry a stale write left behind shows nothing."""
    if query.parent_id is not None and partner.parent_id != query.parent_id:
        return False
    if query.roots and partner.parent_id is not None:
        return False
    return _matches(query, partner.status, partner.partner_id, (partner.name or "").casefold())


async def list_links(
    redis: Redis, codec: LinkCodec, partner: Partner, query: LinkQuery
) -> Page[Link]:
    """One page of the partner's links, newest first."""
    top = (query.before - 1) if query.before else int(await redis.get(link_seq_key(partner.num))
                                                      or 0)
    chunk = LINK_CHUNK if query.status else query.limit + 1
    matched: list[Link] = []
    number, scanned = top, 0
    while number >= 1 and len(matched) <= query.limit and scanned < MAX_SCANNED:
        numbers = list(range(number, max(0, number - chunk), -1))
        async with redis.pipeline(transaction=False) as pipe:
            for link_num in numbers:
                pipe.hgetall(link_key(partner.num, link_num))
            replies = await pipe.execute()
        for link_num, fields in zip(numbers, replies, strict=True):
            number, scanned = link_num - 1, scanned + 1
            if not fields:
                continue  # a number an alias conflict used up
            link = Link.from_hash(codec, {as_text(k): as_text(v) for k, v in fields.items()})
            if query.status is None or link.status == query.status:
                matched.append(link)
                if len(matched) > query.limit:
                    break
    shown = matched[: query.limit]
    if len(matched) > query.limit:
        next_cursor: str | None = encode_cursor("links", str(shown[-1].link_num))
    elif number >= 1:
        next_cursor = encode_cursor("links", str(number + 1))
    else:
        next_cursor = None
    return Page(shown, next_cursor)


@dataclass(frozen=True)
class Subtree:
    """A partner and its descendants to a depth, as nested nodes; at most MAX_TREE_NODES nodes,
    shallower first (`truncated` says some were left out: a node whose `children` is shorter than
    its `childCount` can be opened with a tree of its own)."""

    root: dict[str, Any]
    depth: int
    node_count: int
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "partnerId": self.root["partnerId"], "depth": self.depth,
            "nodeCount": self.node_count, "maxNodes": MAX_TREE_NODES,
            "truncated": self.truncated, "tree": self.root,
        }


async def subtree(redis: Redis, partner_id: str, depth: int) -> Subtree:
    found = await summaries(redis, [partner_id])
    if not found:
        raise NotFound(f"partner {partner_id!r} does not exist: create it with PUT")
    root_node = found[0].node_json([])
    frontier = [(found[0], root_node)]
    budget, truncated, node_count = MAX_TREE_NODES - 1, False, 1
    for _ in range(depth):
        asked: list[dict[str, Any]] = []
        async with redis.pipeline(transaction=False) as pipe:
            for summary, node in frontier:
                take = min(summary.child_count, budget)
                truncated = truncated or take < summary.child_count
                budget -= take
                if take:
                    pipe.zrange(kids_index_key(summary.partner.partner_id), 0, take - 1)
                    asked.append(node)
            replies = await pipe.execute() if asked else []
        if not asked:
            break
        parents = {
            child_id: node for node, members in zip(asked, replies, strict=True)
            for child_id in (Entry.parse(as_text(member)).partner_id for member in members)
        }
        frontier = []
        for child in await summaries(redis, list(parents)):
            parent = parents[child.partner.partner_id]
            if child.partner.parent_id != parent["partnerId"]:
                continue  # a stale index entry
            child_node = child.node_json([])
            parent["children"].append(child_node)
            frontier.append((child, child_node))
            node_count += 1
    return Subtree(root_node, depth, node_count, truncated)
