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


def partner_key(partner_id: str) -> str:
    return f"{PREFIX}p:{partner_id}"


def children_key(partner_id: str) -> str:
    return f"{PREFIX}children:{partner_id}"


def link_key(partner_num: int, link_num: int) -> str:
    return f"{PREFIX}l:{partner_num}:{link_num}"


def link_seq_key(partner_num: int) -> str:
    return f"{PREFIX}lseq:{partner_num}"


def alias_key(alias: str) -> str:
    return f"{PREFIX}alias:{alias}"


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
