"""The ledger against a naive reference (reference.py), through the real pipeline: random forests
up to 8 levels, plans and their versions, registrations and reattributions, streams of deposits,
trades and reversals over October and November 2026 and a few events just now, after partners
changed. The ledger equals the reference to the cent, and stays the same when months are computed
again, when every event is posted again, and whatever the order and batches things arrive in."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from itertools import groupby
from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from analytics.commissions.store import CommissionStore
from analytics.commissions.worker import CommissionsWorker
from edge.clock import now_ms
from edge.registry.keys import HISTORY_STREAM
from edge.streams import FIELD
from tests.analytics.commissions.conftest import COMMISSION_TABLES, Programme, ms
from tests.analytics.commissions.reference import Line, PlanVersion, Reference, Registration
from tests.analytics.commissions.reference import month as month_of
from tests.analytics.conftest import TABLES

pytestmark = pytest.mark.servers

DAY, HOUR = 86_400_000, 3_600_000
OCT = ms("2026-10-01T00:00:00")
SYMBOLS = ("EURUSD", "eurusd", "GBPUSD", "XAUUSD", "XAGUSD", "BTCUSD", "US30", "EURGBP", "ETUSD")
HALVES = ("0.005", "0.015", "0.125", "1.005", "2.675", "0.5")  # half a cent away from a tie
GLOBS = ("EURUSD", "eur*", "XAU*", "X?GUSD", "*USD", "??USD", "BTC?SD", "us30", "GBP*", "*")
STARTS = (0, 0, 0, OCT, OCT + 14 * DAY + 12 * HOUR, OCT + 31 * DAY, OCT + 50 * DAY)
PLAN_IDS, USERS = ("gold", "std"), (1, 2, 3, 4, 5, 6)
LAST_PAST = ms("2026-12-01T00:00:00") - 1
# An example runs the whole pipeline (seconds, a month computed again ~5 s on a busy machine):
# few examples a run, no deadline; each example resets the state itself.
PROPERTY = settings(deadline=None, suppress_health_check=list(HealthCheck))


@dataclass
class Scenario:
    plans: list[tuple[str, int, dict[str, Any]]]  # in PUT order: id, effectiveFrom, terms
    partners: list[tuple[str, str | None, dict[str, Any]]]  # id, parent, fields at creation
    registrations: list[tuple[int, str, int, str]]  # user, partner, ts, event_type
    events: list[dict[str, Any]]  # past events, each reversal after what it reverses
    changes: list[tuple[str, str, Any]]  # (field, partner, value) written just now
    later: list[dict[str, Any]]  # events stamped now, after the changes (ts filled in then)


@st.composite
def decimal_text(draw: st.DrawFn, high: int, places: int = 8, zero: bool = True) -> str:
    scale = draw(st.integers(0, places))
    if zero and draw(st.integers(0, 7)) == 7:
        return format(Decimal(0).scaleb(-scale), "f")
    return format(Decimal(draw(st.integers(1, high * 10**scale))).scaleb(-scale), "f")


@st.composite
def past_ts(draw: st.DrawFn, first: int = OCT, days: int = 61) -> int:
    day = draw(st.integers(0, days - 1))
    hour = draw(st.sampled_from((0, 0, 9, 12, 23)))
    return first + day * DAY + hour * HOUR - draw(st.sampled_from((0, 0, 0, 1)))


@st.composite
def terms(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if draw(st.integers(0, 3)) < 3:
        globs = draw(st.lists(st.sampled_from(GLOBS), unique_by=str.upper, min_size=1,
                              max_size=5))
        if "*" not in globs and draw(st.booleans()):
            globs.append("*")
        globs = globs[: globs.index("*") + 1] if "*" in globs else globs  # nothing after it
        cuts = sorted(draw(st.sets(st.integers(1, max(len(globs) - 1, 1)), max_size=2)))
        groups = [globs[a:b] for a, b in zip([0, *cuts], [*cuts, len(globs)], strict=True)]
        per_lot = st.one_of(st.sampled_from(("1", "0.5")), decimal_text(12))
        body["rebates"] = [{"symbols": g, "perLot": draw(per_lot)} for g in groups if g]
    if draw(st.integers(0, 1)) == 0:
        body["revenueShare"] = draw(st.one_of(st.just("0.5"), decimal_text(1, 4)))
    mode, levels = draw(st.sampled_from((None, "override", "split"))), draw(st.integers(1, 9))
    if mode == "override":
        body["levels"] = {"mode": mode, "shares": [draw(decimal_text(2, 4))
                                                   for _ in range(levels)]}
    elif mode == "split":
        left, shares = 10_000, []  # ten-thousandths of the pool, at most all of it
        for _ in range(levels):
            shares.append(min(draw(st.integers(0, 10_000)), left))
            left -= shares[-1]
        body["levels"] = {"mode": mode, "shares": [format(Decimal(share).scaleb(-4), "f")
                                                   for share in shares]}
    if draw(st.booleans()):
        thresholds = {"minActiveTraders": st.integers(0, 3), "minLots": decimal_text(4, 2),
                      "minFirstDeposits": st.integers(0, 2)}
        body["tiers"] = [{"name": f"T{index}", "multiplier": draw(decimal_text(3, 4)),
                          **{k: draw(v) for k, v in thresholds.items() if draw(st.booleans())}}
                         for index in range(draw(st.integers(1, 3)))]
    if draw(st.booleans()):
        optional = {"minFirstDeposit": decimal_text(300, 2), "minLots": decimal_text(3, 3),
                    "withinDays": st.integers(1, 60)}
        body["cpa"] = {"amount": draw(decimal_text(300, 2, zero=False)),
                       **{k: draw(v) for k, v in optional.items() if draw(st.booleans())}}
    return body


@st.composite
def funnel_event(draw: st.DrawFn, index: int, earlier: list[dict[str, Any]],
                 reversed_ids: set[str], ts: int | None) -> dict[str, Any]:
    """A deposit, trade or reversal (of an earlier deposit or trade not reversed yet)."""
    targets = [e for e in earlier if e["type"] in ("deposit", "trade")
               and e["eventId"] not in reversed_ids]
    kinds = ["trade", "trade", "trade", "deposit", "deposit", "withdrawal"]
    kinds += ["reversal"] * 2 if targets else []
    kind = draw(st.sampled_from(kinds))
    if kind == "reversal":
        target = draw(st.sampled_from(targets))
        reversed_ids.add(target["eventId"])
        when = None if ts is None or target["ts"] is None else min(
            target["ts"] + draw(st.integers(0, 30)) * 12 * HOUR, LAST_PAST)
        return {"eventId": f"r{index}", "type": "reversal", "ts": when,
                "userId": target["userId"], "reverses": target["eventId"]}
    found: dict[str, Any] = {"eventId": f"{kind[0]}{index}", "type": kind, "ts": ts,
                             "userId": draw(st.sampled_from(USERS))}
    if kind == "trade":
        lots = st.one_of(st.sampled_from(HALVES), decimal_text(5, zero=False))
        found.update(symbol=draw(st.sampled_from(SYMBOLS)), lots=draw(lots),
                     commission=draw(st.sampled_from(("0", *HALVES, draw(decimal_text(40))))),
                     markup=draw(st.sampled_from(("0", draw(decimal_text(20))))))
    else:
        found["amount"] = draw(decimal_text(400, draw(st.sampled_from((0, 2, 8))), zero=False))
    return found


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    plans = [(plan_id, draw(st.sampled_from(STARTS)), draw(terms()))
             for plan_id in PLAN_IDS for _ in range(draw(st.integers(1, 2)))]
    plans = draw(st.permutations(plans))
    partners: list[tuple[str, str | None, dict[str, Any]]] = []
    depth: dict[str, int] = {}
    ctids = iter(draw(st.permutations(USERS)))
    # A spine of 1 to 8 levels (deep ones first), then a few partners anywhere.
    spine = draw(st.sampled_from((8, 5, 3, 1, 2, 4, 6, 7)))
    for index in range(spine + draw(st.integers(0, 3))):
        partner_id, parent = f"p{index}", f"p{index - 1}" if index else None
        if index >= spine:
            parent = draw(st.sampled_from((None, *depth)))
            if parent is not None and depth[parent] >= 8:
                parent = None
        depth[partner_id] = 1 + (depth[parent] if parent else 0)
        fields: dict[str, Any] = {}
        if parent is None:
            fields["plan_id"] = draw(st.sampled_from((*PLAN_IDS, *PLAN_IDS, *PLAN_IDS, None)))
        elif draw(st.integers(0, 3)) == 0:
            fields["plan_id"] = draw(st.sampled_from((*PLAN_IDS, None)))
        if draw(st.sampled_from(("active",) * 9 + ("suspended",))) == "suspended":
            fields["status"] = "suspended"
        if draw(st.sampled_from((False, False, False, True))) and (
                user := next(ctids, None)) is not None:
            fields["ctid_user_id"] = user
        partners.append((partner_id, parent, fields))
    ids = [p[0] for p in partners]
    registrations = []
    for user in USERS[:-1]:  # the last user never registers: its events go to no one
        times = draw(st.lists(past_ts(ms("2026-09-25T00:00:00"), 67), min_size=1, max_size=3,
                              unique=True))
        for number, ts in enumerate(sorted(times)):
            registrations.append((user, draw(st.sampled_from(ids[::-1])), ts,
                                  "registration" if number == 0 else "reattribution"))
    events: list[dict[str, Any]] = []
    reversed_ids: set[str] = set()
    for index in range(draw(st.integers(4, 24))):
        events.append(draw(funnel_event(index, events, reversed_ids, draw(past_ts()))))
    edits: dict[str, tuple[Any, ...]] = {
        "status": ("active", "suspended"), "plan_id": (*PLAN_IDS, None),
        "ctid_user_id": (*USERS, None), "parent_id": (*ids, None)}
    changes = [(name, draw(st.sampled_from(ids)), draw(st.sampled_from(edits[name])))
               for name in draw(st.lists(st.sampled_from(sorted(edits)), max_size=3))]
    later: list[dict[str, Any]] = []
    for index in range(draw(st.integers(0, 4))):
        later.append(draw(funnel_event(100 + index, events + later, reversed_ids, None)))
    return Scenario(plans, partners, registrations, events, changes, later)


@dataclass
class Run:
    """What was written, as the reference reads it."""

    programme: Programme
    redis: redis.Redis
    versions: list[PlanVersion] = field(default_factory=list)
    parents: dict[str, str | None] = field(default_factory=dict)
    ctids: dict[str, int | None] = field(default_factory=dict)
    registrations: list[Registration] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.redis.flushall()
        for table in (*TABLES, *COMMISSION_TABLES):
            self.programme.clickhouse.command(f"TRUNCATE TABLE IF EXISTS invite.{table}")

    def ancestors(self, partner_id: str | None) -> list[str]:
        """Root first, as the registry has them now."""
        chain: list[str] = []
        while partner_id is not None and (partner_id := self.parents[partner_id]) is not None:
            chain.insert(0, partner_id)
        return chain

    def setup(self, scenario: Scenario) -> None:
        for plan_id, start, body in scenario.plans:
            version = self.programme.plan(plan_id, start, **body)
            if all((v.plan_id, v.version) != (plan_id, version.version) for v in self.versions):
                self.versions.append(PlanVersion(plan_id, version.version,
                                                 version.effective_from, body))
        for partner_id, parent, fields in scenario.partners:
            self.programme.partner(partner_id, parent_id=parent, **fields)
            self.parents[partner_id] = parent
            self.ctids[partner_id] = fields.get("ctid_user_id")

    def register(self, user: int, partner_id: str, ts: int, event_type: str) -> None:
        ancestors = self.ancestors(partner_id)
        self.programme.register(user, partner_id, ts, ancestors=ancestors, event_type=event_type)
        self.registrations.append(Registration(str(user), partner_id, ts, tuple(ancestors)))

    def change(self, scenario: Scenario) -> None:
        """The partner edits of the scenario that the registry would take, written now."""
        for name, partner_id, value in scenario.changes:
            if name in ("status", "plan_id"):
                self.programme.partner(partner_id, **{name: value})
            elif name == "ctid_user_id" and (value is None or value not in self.ctids.values()):
                self.programme.partner(partner_id, ctid_user_id=value)
                self.ctids[partner_id] = value
            elif name == "parent_id" and partner_id not in [*self.ancestors(value), value]:
                self.programme.partner(partner_id, parent_id=value)
                self.parents[partner_id] = value

    def post(self, *events: dict[str, Any]) -> None:
        stamp = now_ms()
        ready = [{**e, "ts": stamp} if e["ts"] is None else e for e in events]
        self.programme.post(*ready)
        self.posted += ready

    def history(self) -> list[dict[str, Any]]:
        entries: list[Any] = self.redis.xrange(HISTORY_STREAM)  # type: ignore[assignment]
        return [orjson.loads(fields.get(FIELD) or fields[FIELD.encode()]) for _, fields in entries]

    def reference(self) -> list[Line]:
        return Reference(self.history(), self.versions, self.registrations, self.posted).lines()

    def ledger(self) -> list[Line]:
        rows = self.programme.clickhouse.query(
            "SELECT kind, period, level, partner_id, source_partner_id, user_id, event_id, "
            "reverses, base, rate, multiplier, amount, tier, excluded, plan_id, plan_version "
            "FROM invite.commissions FINAL").result_rows
        return sorted(tuple(row) for row in rows)

    def rows(self) -> list[tuple[Any, ...]]:
        """Every column of every line but when it was computed, lineIds included."""
        return sorted(tuple(row) for row in self.programme.clickhouse.query(
            "SELECT * EXCEPT (computed_at) FROM invite.commissions FINAL").result_rows)


def first_pass(programme: Programme) -> None:
    """A ledger pass before any event (as in production: events then arrive user by user)."""
    async def work(client: Redis) -> None:
        worker = CommissionsWorker(client, programme.clickhouse, programme.currency)
        lock = CommissionStore(client).ledger_lock(blocking_timeout=10)
        assert await lock.acquire()
        try:
            await worker.pass_locked(lock)
        finally:
            await lock.release()
    programme._run(work)


def in_order(programme: Programme, redis_client: redis.Redis, scenario: Scenario) -> Run:
    """Set up, the past events and a ledger pass; then the partner edits, later events, a pass."""
    run = Run(programme, redis_client)
    run.reset()
    run.setup(scenario)
    first_pass(programme)
    for registration in scenario.registrations:
        run.register(*registration)
    run.post(*scenario.events)
    programme.compute()
    run.change(scenario)
    if scenario.later:
        run.post(*scenario.later)
    programme.compute()
    return run


def describe(lines: list[Line]) -> None:
    """What the examples covered (pytest --hypothesis-show-statistics)."""
    event(f"lines: {'none' if not lines else '1-19' if len(lines) < 20 else '20+'}")
    for covered in {f"kind {line[0]}" for line in lines} | {
            f"excluded {line[13]}" for line in lines if line[13]} | {
            "a tier reached" for line in lines if line[12]} | {
            "level 4 or deeper" for line in lines if line[2] >= 4}:
        event(covered)


@settings(PROPERTY, max_examples=8)
@given(scenario=scenarios())
def test_the_ledger_equals_the_naive_reference_to_the_cent(
    programme: Programme, redis_client: redis.Redis, scenario: Scenario,
) -> None:
    run = in_order(programme, redis_client, scenario)
    expected = run.reference()
    describe(expected)
    assert run.ledger() == expected


@settings(PROPERTY, max_examples=3)
@given(scenario=scenarios())
def test_computing_every_month_again_changes_no_line(
    programme: Programme, redis_client: redis.Redis, scenario: Scenario,
) -> None:
    run = in_order(programme, redis_client, scenario)
    before = run.rows()
    programme.compute(months=tuple(sorted({month_of(e["ts"]) for e in run.posted})))
    assert run.rows() == before


@settings(PROPERTY, max_examples=4)
@given(scenario=scenarios())
def test_posting_every_event_again_changes_no_line(
    programme: Programme, redis_client: redis.Redis, scenario: Scenario,
) -> None:
    run = in_order(programme, redis_client, scenario)
    before = run.rows()
    programme.post(*run.posted)
    programme.compute()
    assert run.rows() == before


Arrival = tuple[str, Any]  # ("register", registration) | ("post", event) | ("change", None)


@st.composite
def arrivals(draw: st.DrawFn, scenario: Scenario) -> list[list[Arrival]]:
    """The scenario's registrations, events and partner changes shuffled, then cut into two or
    three batches; every reversal still comes after what it reverses, and the events stamped
    now after the changes."""
    items: list[Arrival] = [("register", r) for r in scenario.registrations]
    items += [("post", e) for e in (*scenario.events, *scenario.later)] + [("change", None)]
    order: list[Arrival] = []
    pending = list(draw(st.permutations(items)))
    while pending:
        done = {e["eventId"] for kind, e in order if kind == "post"}
        changed = ("change", None) in order
        ready = next(item for item in pending if item[0] != "post" or (
            (item[1]["ts"] is not None or changed)
            and (item[1]["type"] != "reversal" or item[1]["reverses"] in done)))
        pending.remove(ready)
        order.append(ready)
    cuts = sorted(draw(st.sets(st.integers(1, len(order) - 1), min_size=1, max_size=2)))
    batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
    if not any(kind == "post" for kind, _ in batches[0]):
        # The first pass needs the events stream: bring the first past event forward (it
        # reverses nothing, and what reverses it comes later anyway).
        first = next(i for i in order if i[0] == "post" and i[1] is scenario.events[0])
        for batch in batches:
            if first in batch:
                batch.remove(first)
        batches[0].insert(0, first)
    return batches


@settings(PROPERTY, max_examples=8)
@given(data=st.data())
def test_events_in_any_order_and_batches_give_the_reference_lines(
    programme: Programme, redis_client: redis.Redis, data: st.DataObject,
) -> None:
    scenario = data.draw(scenarios(), label="scenario")
    batches = data.draw(arrivals(scenario), label="batches")
    run = Run(programme, redis_client)
    run.reset()
    run.setup(scenario)
    if data.draw(st.booleans(), label="a ledger pass before any event"):
        first_pass(programme)
    for batch in batches:
        for kind, group in groupby(batch, key=lambda arrival: arrival[0]):
            items = [item for _, item in group]
            if kind == "post":
                run.post(*items)
            elif kind == "register":
                for registration in items:
                    run.register(*registration)
            else:
                run.change(scenario)
        programme.compute()
    expected = run.reference()
    describe(expected)
    assert run.ledger() == expected
