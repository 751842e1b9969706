"""The registry's Redis keys and its change channel."""

from __future__ import annotations

# Every registry write publishes here; edge caches and the partners sync listen.
CHANGES_CHANNEL = "invite:changes"
# Every registry key shares one hash tag, so that on Redis Cluster the multi-key transactions of
# a partner edit stay on one slot. The registry is small; the click stream has its own slot.
PREFIX = "invite:{registry}:"
# Hierarchy edits are rare and must not interleave (two re-parentings could build a cycle).
LOCK_KEY = PREFIX + "lock"
PARTNER_SEQ = PREFIX + "pseq"
PARTNER_BY_NUM = PREFIX + "pnum"
CODE_SALT = PREFIX + "code-salt"
# The listing indexes (edge/registry/index.py): sorted sets of one entry per partner, all of
# score 0 so that they read in partner-id order; none starts with "p:", which the partners
# sync scans.
PARTNER_INDEX = PREFIX + "index:partners"
ROOT_INDEX = PREFIX + "index:roots"
INDEX_VERSION = PREFIX + "index:version"
# Roll-up counts: partner id -> how many partners sit below it, how many links it owns.
DESCENDANT_COUNTS = PREFIX + "index:descendants"
LINK_COUNTS = PREFIX + "index:links"
# Aliases match without regard to case (edge/registry/aliases.py): set once the aliases stored in
# their original case have been moved to lower-case keys; clashes found then, by alias.
ALIASES_FOLDED = PREFIX + "aliases:folded"
ALIAS_CLASHES = PREFIX + "aliases:clashes"


def partner_key(partner_id: str) -> str:
    return f"{PREFIX}p:{partner_id}"


def children_key(partner_id: str) -> str:
    return f"{PREFIX}children:{partner_id}"


def kids_index_key(partner_id: str) -> str:
    """The listing index of a partner's direct children (beside the plain set children_key)."""
    return f"{PREFIX}index:kids:{partner_id}"


def link_key(partner_num: int, link_num: int) -> str:
    return f"{PREFIX}l:{partner_num}:{link_num}"


def link_seq_key(partner_num: int) -> str:
    return f"{PREFIX}lseq:{partner_num}"


def alias_key(alias: str) -> str:
    """Where an alias points, whatever case it is asked in (aliases are ASCII)."""
    return f"{PREFIX}alias:{alias.lower()}"


ALIAS_PATTERN_KEY = f"{PREFIX}alias:*"


def ctid_user_key(user_id: int) -> str:
    """The partner whose own cTrader ID user this is (cTrader's in-app invitations name it)."""
    return f"{PREFIX}ctid:{user_id}"


# Every partner write appends the partner's new state here, in the write's transaction (never
# trimmed: a few hundred bytes a change). The commissions ledger reads each partner's parent,
# ancestors, status, plan and cTrader user as they were at an event's time.
HISTORY_STREAM = PREFIX + "history"
# Commission plans (analytics/commissions keeps them); a partner's planId must name one.
PLANS_PREFIX = "invite:{commissions}:"


def plan_key(plan_id: str) -> str:
    return f"{PLANS_PREFIX}plan:{plan_id}"
