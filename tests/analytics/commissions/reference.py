"""A deliberately naive commissions ledger, written from docs/notes/commissions-semantics.md and
the contract alone: plain Python loops over the raw inputs (the registry's history, the plan
versions as they were PUT, the registrations, the events as they were posted), nothing indexed,
nothing cached, nothing shared with analytics/commissions. Slow and obvious on purpose: the
property test compares the real ledger with it line by line, to the cent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

CENT = Decimal("0.01")
DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (kind, period, level, partner, sourcePartner, userId, eventId, reverses, base, rate,
#  multiplier, amount, tier, excluded, planId, planVersion)
Line = tuple[str, str, int, str, str, str, str, str, Decimal, Decimal, Decimal, Decimal, str, str,
             str, int]


@dataclass(frozen=True)
class PlanVersion:
    """One version of a plan as it was PUT: its number, its start, the body (camelCase)."""

    plan_id: str
    version: int
    effective_from: int
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Registration:
    user_id: str
    partner_id: str
    ts: int
    ancestors: tuple[str, ...]  # root first, as recorded with the registration


def month(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m")


def month_before(period: str) -> str:
    year, number = int(period[:4]), int(period[5:])
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def glob_matches(glob: str, symbol: str) -> bool:
    """`*` any run (also none), `?` one character, letters in either case; the whole symbol."""
    if not glob:
        return not symbol
    head = glob[0]
    if head == "*":
        return any(glob_matches(glob[1:], symbol[cut:]) for cut in range(len(symbol) + 1))
    if not symbol:
        return False
    if head == "?" or head.upper() == symbol[0].upper():
        return glob_matches(glob[1:], symbol[1:])
    return False


class Reference:
    """Every line the ledger should hold when no period is closed."""

    def __init__(self, history: Sequence[Mapping[str, Any]], plans: Iterable[PlanVersion],
                 registrations: Iterable[Registration],
                 events: Iterable[Mapping[str, Any]]) -> None:
        self.history = list(history)  # the registry's history stream, oldest first
        self.plans = list(plans)
        self.registrations = list(registrations)
        self.events: list[Mapping[str, Any]] = []
        for event in events:  # a repeated eventId is a no-op
            if all(kept["eventId"] != event["eventId"] for kept in self.events):
                self.events.append(event)

    # --- inputs read naively ------------------------------------------------------------------

    def partner_at(self, partner_id: str, ts: int) -> dict[str, Any]:
        """The partner's latest state written at or before ts; before its first, its first."""
        state: dict[str, Any] = {}
        first: dict[str, Any] | None = None
        chosen: dict[str, Any] | None = None
        for entry in self.history:
            if entry["p"] != partner_id:
                continue
            state = {**state, **{k: v for k, v in entry.items() if k not in ("p", "ts")}}
            if first is None:
                first = dict(state)
            if entry["ts"] <= ts:
                chosen = dict(state)
        found = chosen if chosen is not None else first
        assert found is not None, f"partner {partner_id} has no history"
        return found

    def current_ctid(self, partner_id: str) -> str:
        return str(self.partner_at(partner_id, 2**62).get("ctid") or "")

    def chain_at(self, partner_id: str, ts: int) -> list[str]:
        ancestors = list(self.partner_at(partner_id, ts)["ancestors"])
        return [partner_id, *reversed(ancestors)]

    def plan_at(self, chain: Sequence[str], ts: int) -> PlanVersion | None:
        plan_id = ""
        for member in chain:
            plan_id = str(self.partner_at(member, ts).get("plan") or "")
            if plan_id:
                break
        if not plan_id:
            return None
        best: PlanVersion | None = None
        for version in self.plans:
            if version.plan_id == plan_id and version.effective_from <= ts and (
                best is None or version.version > best.version
            ):
                best = version
        return best

    def registration_for(self, user_id: str, ts: int) -> Registration | None:
        """The latest registration or reattribution at or before ts, else the first."""
        latest: Registration | None = None
        first: Registration | None = None
        for registration in self.registrations:
            if registration.user_id != user_id:
                continue
            if first is None or registration.ts < first.ts:
                first = registration
            if registration.ts <= ts and (latest is None or registration.ts > latest.ts):
                latest = registration
        return latest if latest is not None else first

    def credited_to(self, event: Mapping[str, Any]) -> str:
        registration = self.registration_for(str(event["userId"]), event["ts"])
        return registration.partner_id if registration is not None else ""

    def is_reversed(self, event_id: str) -> bool:
        return any(e["type"] == "reversal" and e["reverses"] == event_id for e in self.events)

    def first_deposit(self, user_id: str) -> Mapping[str, Any] | None:
        best: Mapping[str, Any] | None = None
        for event in self.events:
            if event["type"] != "deposit" or str(event["userId"]) != user_id:
                continue
            if self.is_reversed(event["eventId"]):
                continue
            if best is None or (event["ts"], event["eventId"]) < (best["ts"], best["eventId"]):
                best = event
        return best

    # --- tiers and exclusions -----------------------------------------------------------------

    def downline_figures(self, partner_id: str, period: str) -> tuple[int, Decimal, int]:
        traders: set[str] = set()
        lots = Decimal(0)
        first_deposits = 0
        for event in self.events:
            if event["type"] not in ("deposit", "trade") or month(event["ts"]) != period:
                continue
            if self.is_reversed(event["eventId"]):
                continue
            registration = self.registration_for(str(event["userId"]), event["ts"])
            if registration is None:
                continue
            if partner_id != registration.partner_id and partner_id not in registration.ancestors:
                continue
            if event["type"] == "trade":
                traders.add(str(event["userId"]))
                lots += Decimal(event["lots"])
            else:
                ftd = self.first_deposit(str(event["userId"]))
                if ftd is not None and ftd["eventId"] == event["eventId"]:
                    first_deposits += 1
        return len(traders), lots, first_deposits

    def tier(self, partner_id: str, period: str, plan: PlanVersion) -> tuple[str, Decimal]:
        name, multiplier = "", Decimal(1)
        tiers = plan.body.get("tiers") or []
        if not tiers:
            return name, multiplier
        traders, lots, first_deposits = self.downline_figures(partner_id, month_before(period))
        for tier in tiers:
            met = True
            if tier.get("minActiveTraders") is not None and traders < int(
                    tier["minActiveTraders"]):
                met = False
            if tier.get("minLots") is not None and lots < Decimal(tier["minLots"]):
                met = False
            if tier.get("minFirstDeposits") is not None and first_deposits < int(
                    tier["minFirstDeposits"]):
                met = False
            if met:
                name, multiplier = tier["name"], Decimal(tier["multiplier"])
        return name, multiplier

    def excluded(self, partner_id: str, ts: int, user_id: str) -> str:
        if self.partner_at(partner_id, ts).get("status") == "suspended":
            return "suspended"
        if self.current_ctid(partner_id) == user_id:
            return "self_referral"
        return ""

    # --- lines --------------------------------------------------------------------------------

    def level_lines(self, kind: str, base: Decimal, plan: PlanVersion, chain: Sequence[str],
                    ts: int, source: str, user_id: str, event_id: str) -> list[Line]:
        shares = (plan.body.get("levels") or {}).get("shares") or ["1"]
        lines: list[Line] = []
        level = 0
        for share_text in shares:
            level += 1
            if level > len(chain):
                break
            share = Decimal(share_text)
            if share == 0:
                continue
            earner = chain[level - 1]
            tier_name, multiplier = self.tier(earner, month(ts), plan)
            reason = self.excluded(earner, ts, user_id)
            amount = Decimal(0) if reason else cents(base * share * multiplier)
            lines.append((kind, month(ts), level, earner, source, user_id, event_id, "", base,
                          share, multiplier, amount, tier_name, reason, plan.plan_id,
                          plan.version))
        return lines

    def trade_lines(self, trade: Mapping[str, Any]) -> list[Line]:
        partner_id = self.credited_to(trade)
        if not partner_id:
            return []
        chain = self.chain_at(partner_id, trade["ts"])
        plan = self.plan_at(chain, trade["ts"])
        if plan is None:
            return []
        user_id = str(trade["userId"])
        lines: list[Line] = []
        for rule in plan.body.get("rebates") or []:
            if any(glob_matches(glob, trade["symbol"]) for glob in rule["symbols"]):
                base = Decimal(trade["lots"]) * Decimal(rule["perLot"])
                if base != 0:
                    lines += self.level_lines("rebate", base, plan, chain, trade["ts"],
                                              partner_id, user_id, trade["eventId"])
                break
        share = plan.body.get("revenueShare")
        if share is not None:
            base = Decimal(share) * (Decimal(trade["commission"]) + Decimal(trade["markup"]))
            if base != 0:
                lines += self.level_lines("revenue_share", base, plan, chain, trade["ts"],
                                          partner_id, user_id, trade["eventId"])
        return lines

    def reversal_lines(self, reversal: Mapping[str, Any]) -> list[Line]:
        lines: list[Line] = []
        for trade in self.events:
            if trade["eventId"] != reversal["reverses"] or trade["type"] != "trade":
                continue
            for line in self.trade_lines(trade):
                (_, _, level, earner, source, user_id, _, _, base, rate, multiplier, amount,
                 tier_name, reason, plan_id, version) = line
                lines.append(("reversal", month(reversal["ts"]), level, earner, source, user_id,
                              reversal["eventId"], trade["eventId"], -base, rate, multiplier,
                              -amount, tier_name, reason, plan_id, version))
        return lines

    def cpa_lines(self, user_id: str) -> list[Line]:
        ftd = self.first_deposit(user_id)
        if ftd is None:
            return []
        first_partner = self.credited_to(ftd)
        if not first_partner:
            return []
        plan = self.plan_at(self.chain_at(first_partner, ftd["ts"]), ftd["ts"])
        if plan is None or plan.body.get("cpa") is None:
            return []
        cpa = plan.body["cpa"]
        if Decimal(ftd["amount"]) < Decimal(cpa.get("minFirstDeposit", "0")):
            return []
        min_lots = Decimal(cpa.get("minLots", "0"))
        moment_event = ftd
        if min_lots > 0:
            registered = min(r.ts for r in self.registrations if r.user_id == user_id)
            within = cpa.get("withinDays")
            trades = [e for e in self.events
                      if e["type"] == "trade" and str(e["userId"]) == user_id
                      and not self.is_reversed(e["eventId"])
                      and (within is None or e["ts"] < registered + int(within) * DAY_MS)]
            trades.sort(key=lambda e: (e["ts"], e["eventId"]))
            total = Decimal(0)
            reached: Mapping[str, Any] | None = None
            for trade in trades:
                total += Decimal(trade["lots"])
                if total >= min_lots:
                    reached = trade
                    break
            if reached is None:
                return []
            if reached["ts"] > ftd["ts"]:
                moment_event = reached
        source = self.credited_to(moment_event)
        if not source:
            return []
        chain = self.chain_at(source, moment_event["ts"])
        return self.level_lines("cpa", Decimal(cpa["amount"]), plan, chain, moment_event["ts"],
                                source, user_id, moment_event["eventId"])

    def lines(self) -> list[Line]:
        """Every line, sorted; exact arithmetic (a precision no amount here comes near)."""
        lines: list[Line] = []
        users: list[str] = []
        with localcontext() as context:
            context.prec = 200
            for event in self.events:
                if event["type"] == "trade":
                    lines += self.trade_lines(event)
                elif event["type"] == "reversal":
                    lines += self.reversal_lines(event)
                if str(event["userId"]) not in users:
                    users.append(str(event["userId"]))
            for user_id in users:
                lines += self.cpa_lines(user_id)
        return sorted(lines)
