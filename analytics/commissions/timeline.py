"""Each partner as it was at any moment, for the ledger: its chain (itself, then its ancestors
nearest first), every chain member's status then and own cTrader user, and the plan version in
force.

Built from the registry's history stream (every partner write appends the partner's new state)
and the plan versions, as intervals: a row holds from `valid_from` until the partner's next row.
A partner's first row holds from the beginning of time, so events older than the registry's
record of it still find it. Partners older than the history are read from the registry as they
are now.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from redis.asyncio import Redis

from analytics.commissions.store import PlanVersion, in_force
from edge.redis_client import as_text
from edge.registry.keys import HISTORY_STREAM, partner_key
from edge.streams import decode_event

STATE_FIELDS: Final = ("parent", "ancestors", "status", "plan", "ctid")
SCAN_COUNT: Final = 1000


@dataclass
class PartnerStates:
    """One partner's states over time: (ms, state) oldest first; the first holds from 0."""

    times: list[int] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)

    def add(self, ts: int, change: Mapping[str, Any]) -> None:
        state = dict(self.states[-1]) if self.states else {
            "parent": "", "ancestors": [], "status": "active", "plan": "", "ctid": ""}
        state.update({k: change[k] for k in STATE_FIELDS if k in change})
        if self.states and ts <= self.times[-1]:
            ts = self.times[-1]  # same millisecond: the later write wins
            self.states[-1] = state
            return
        self.times.append(ts if self.states else 0)
        self.states.append(state)

    def at(self, ts: int) -> dict[str, Any]:
        return self.states[max(bisect.bisect_right(self.times, ts) - 1, 0)]


@dataclass(frozen=True)
class TimelineRow:
    partner_id: str
    valid_from: int  # ms
    chain: tuple[str, ...]  # the partner, then its ancestors nearest first
    chain_status: tuple[str, ...]
    chain_ctid: tuple[str, ...]
    plan_id: str  # "" (no plan anywhere up the chain)
    plan_version: int  # 0: no version of it in force

    def values(self) -> tuple[Any, ...]:
        return (self.partner_id, self.valid_from, list(self.chain), list(self.chain_status),
                list(self.chain_ctid), self.plan_id, self.plan_version)


def partner_states(
    history: Iterable[Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]]
) -> dict[str, PartnerStates]:
    """Every partner's states: its history entries in order, or (no history) as it is now."""
    states: dict[str, PartnerStates] = defaultdict(PartnerStates)
    for entry in history:
        states[str(entry["p"])].add(int(entry["ts"]), entry)
    for partner_id, state in current.items():
        if partner_id not in states:
            states[partner_id].add(0, state)
    return dict(states)


def timeline_rows(
    states: Mapping[str, PartnerStates], plans: Mapping[str, Sequence[PlanVersion]]
) -> list[TimelineRow]:
    """The intervals of every partner: a new row at each moment its chain, a chain member's
    status, cTrader user or plan, or the plan version in force changes."""
    rows: list[TimelineRow] = []
    plan_times = {plan_id: sorted({v.effective_from for v in versions})
                  for plan_id, versions in plans.items()}
    for partner_id, own in sorted(states.items()):
        members = {partner_id} | {a for s in own.states for a in s["ancestors"]}
        moments = {t for member in members if member in states for t in states[member].times}
        plan_ids = {s["plan"] for member in members if member in states
                    for s in states[member].states if s["plan"]}
        moments |= {t for plan_id in plan_ids for t in plan_times.get(plan_id, ())}
        last: TimelineRow | None = None
        for moment in sorted(moments):
            row = _row_at(partner_id, moment, states, plans)
            if last is None or row.values()[2:] != last.values()[2:]:
                rows.append(row)
                last = row
    return rows


def _row_at(
    partner_id: str, moment: int, states: Mapping[str, PartnerStates],
    plans: Mapping[str, Sequence[PlanVersion]],
) -> TimelineRow:
    own = states[partner_id].at(moment)
    chain = (partner_id, *reversed(own["ancestors"]))
    member_states = [states[m].at(moment) if m in states else {} for m in chain]
    plan_id = next((s.get("plan", "") for s in member_states if s.get("plan")), "")
    version = in_force(plans.get(plan_id, ()), moment) if plan_id else None
    return TimelineRow(
        partner_id=partner_id,
        valid_from=moment,
        chain=chain,
        chain_status=tuple(str(s.get("status", "active")) for s in member_states),
        # A partner's own cTrader user is who it is, not a state it was in: the latest counts.
        chain_ctid=tuple(str(states[m].states[-1].get("ctid", "")) if m in states else ""
                         for m in chain),
        plan_id=plan_id,
        plan_version=version.version if version is not None else 0,
    )


async def read_history(redis: Redis) -> list[dict[str, Any]]:
    """The registry's history stream, oldest first."""
    entries: list[dict[str, Any]] = []
    start = "-"
    while True:
        page: list[tuple[Any, Any]] = await redis.xrange(
            HISTORY_STREAM, start, "+", count=SCAN_COUNT) or []
        entries.extend(decode_event(fields) for _, fields in page)
        if len(page) < SCAN_COUNT:
            return entries
        start = "(" + as_text(page[-1][0])


async def read_current(redis: Redis) -> dict[str, dict[str, Any]]:
    """Every partner of the registry as it is now, in the history's form."""
    prefix = partner_key("")
    keys = [as_text(key) async for key in redis.scan_iter(match=prefix + "*", count=SCAN_COUNT)]
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), SCAN_COUNT):
        chunk = keys[start : start + SCAN_COUNT]
        async with redis.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.hgetall(key)
            replies = await pipe.execute()
        for key, fields in zip(chunk, replies, strict=True):
            text = {as_text(k): as_text(v) for k, v in fields.items()}
            if "num" not in text:
                continue
            found[key[len(prefix):]] = {
                "parent": text.get("parent", ""),
                "ancestors": orjson.loads(text.get("ancestors") or "[]"),
                "status": text.get("status") or "active",
                "plan": text.get("plan", ""), "ctid": text.get("ctid_user", ""),
            }
    return found
