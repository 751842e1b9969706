"""A commission plan's terms, read from a `PUT /api/plans/{planId}` body field by field (every
fault names its field), and the rules they define: which rebate a symbol earns, which tier a
partner reaches."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from edge.errors import InvalidInput
from edge.spelling import is_ascii_digits

MAX_SCALE: Final = 8
MAX_AMOUNT: Final = Decimal(10) ** 9
MAX_FACTOR: Final = Decimal(10)  # shares, revenue share and multipliers
MAX_RULES: Final = 100
MAX_GLOBS: Final = 100
MAX_TIERS: Final = 20
MAX_LEVELS: Final = 32  # the registry's deepest tree
MAX_WITHIN_DAYS: Final = 3650
MAX_NAME: Final = 200
MAX_TIER_NAME: Final = 64
MODES: Final = ("override", "split")
# An event's symbol is 1-32 of these (edge/events/model.py); a glob adds * and ?.
SYMBOL_ALPHABET: Final = "A-Za-z0-9._/#:+-"
_GLOB: Final = re.compile(r"[A-Za-z0-9._/#:+*?-]+")
_DECIMAL_TEXT: Final = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,8})?")
ONE: Final = Decimal(1)

FIELDS: Final = frozenset(
    {"name", "effectiveFrom", "cpa", "rebates", "revenueShare", "levels", "tiers"}
)
CPA_FIELDS: Final = frozenset({"amount", "minFirstDeposit", "minLots", "withinDays"})
REBATE_FIELDS: Final = frozenset({"symbols", "perLot"})
LEVEL_FIELDS: Final = frozenset({"mode", "shares"})
TIER_FIELDS: Final = frozenset(
    {"name", "multiplier", "minActiveTraders", "minLots", "minFirstDeposits"}
)


class PlanInvalid(InvalidInput):
    """A plan refused: `field` is the path of the value at fault (`levels.shares[2]`)."""

    code = "invalid_plan"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field

    def to_json(self) -> dict[str, dict[str, Any]]:
        body = super().to_json()
        body["error"]["field"] = self.field
        return body


@dataclass(frozen=True)
class Cpa:
    amount: Decimal
    min_first_deposit: Decimal = Decimal(0)
    min_lots: Decimal = Decimal(0)
    within_days: int | None = None  # None: lots traded at any time count


@dataclass(frozen=True)
class Rebate:
    symbols: tuple[str, ...]
    per_lot: Decimal

    def matches(self, symbol: str) -> bool:
        return any(glob_regex(glob).fullmatch(symbol) for glob in self.symbols)


@dataclass(frozen=True)
class Tier:
    name: str
    multiplier: Decimal
    min_active_traders: int | None = None
    min_lots: Decimal | None = None
    min_first_deposits: int | None = None

    def met(self, active_traders: int, lots: Decimal, first_deposits: int) -> bool:
        return (
            (self.min_active_traders is None or active_traders >= self.min_active_traders)
            and (self.min_lots is None or lots >= self.min_lots)
            and (self.min_first_deposits is None or first_deposits >= self.min_first_deposits)
        )


@dataclass(frozen=True)
class Terms:
    """What a plan version pays. Without `levels`, level 1 earns the whole base."""

    name: str
    cpa: Cpa | None = None
    rebates: tuple[Rebate, ...] = ()
    revenue_share: Decimal | None = None
    mode: str = "override"
    shares: tuple[Decimal, ...] = (ONE,)
    tiers: tuple[Tier, ...] = ()

    def per_lot(self, symbol: str) -> Decimal | None:
        """The rebate per lot of the first rule matching the symbol (None: no rule does)."""
        return next((rule.per_lot for rule in self.rebates if rule.matches(symbol)), None)

    def tier(self, active_traders: int, lots: Decimal, first_deposits: int) -> Tier | None:
        """The highest tier (the last listed) whose thresholds these figures meet."""
        met = [t for t in self.tiers if t.met(active_traders, lots, first_deposits)]
        return met[-1] if met else None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name}
        if self.cpa is not None:
            cpa: dict[str, Any] = {
                "amount": text(self.cpa.amount),
                "minFirstDeposit": text(self.cpa.min_first_deposit),
                "minLots": text(self.cpa.min_lots),
            }
            if self.cpa.within_days is not None:
                cpa["withinDays"] = self.cpa.within_days
            body["cpa"] = cpa
        if self.rebates:
            body["rebates"] = [{"symbols": list(r.symbols), "perLot": text(r.per_lot)}
                               for r in self.rebates]
        if self.revenue_share is not None:
            body["revenueShare"] = text(self.revenue_share)
        body["levels"] = {"mode": self.mode, "shares": [text(s) for s in self.shares]}
        if self.tiers:
            body["tiers"] = [_tier_json(t) for t in self.tiers]
        return body


def _tier_json(tier: Tier) -> dict[str, Any]:
    body: dict[str, Any] = {"name": tier.name, "multiplier": text(tier.multiplier)}
    if tier.min_active_traders is not None:
        body["minActiveTraders"] = tier.min_active_traders
    if tier.min_lots is not None:
        body["minLots"] = text(tier.min_lots)
    if tier.min_first_deposits is not None:
        body["minFirstDeposits"] = tier.min_first_deposits
    return body


def text(value: Decimal) -> str:
    """A plan's decimal as written back: exact, without trailing zeros."""
    normal = value.normalize()
    return format(normal, "f") if normal else "0"


def glob_regex(glob: str) -> re.Pattern[str]:
    """A symbol glob (`*` any run, `?` one character) as a regex; letters match either case."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile("".join(parts), re.IGNORECASE)


# --- reading a body ---------------------------------------------------------------------------


def parse_terms(body: Mapping[str, Any], plan_id: str) -> Terms:
    """The terms of a PUT body (its `effectiveFrom` is read by the caller); PlanInvalid."""
    _known(body, FIELDS, "")
    name = body.get("name", plan_id)
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise PlanInvalid("name", f"must be 1 to {MAX_NAME} printable characters")
    return Terms(
        name=name,
        cpa=_cpa(body["cpa"]) if body.get("cpa") is not None else None,
        rebates=_rebates(body.get("rebates")),
        revenue_share=(
            _decimal(body["revenueShare"], "revenueShare", high=ONE)
            if body.get("revenueShare") is not None else None
        ),
        **_levels(body.get("levels")),
        tiers=_tiers(body.get("tiers")),
    )


def _cpa(raw: Any) -> Cpa:
    if not isinstance(raw, Mapping):
        raise PlanInvalid("cpa", "must be an object with amount, minFirstDeposit, minLots, "
                                 "withinDays")
    _known(raw, CPA_FIELDS, "cpa.")
    if "amount" not in raw:
        raise PlanInvalid("cpa.amount", "is required")
    within = raw.get("withinDays")
    if within is not None:
        within = _whole(within, "cpa.withinDays", 1, MAX_WITHIN_DAYS)
    return Cpa(
        amount=_decimal(raw["amount"], "cpa.amount"),
        min_first_deposit=_decimal(raw.get("minFirstDeposit", 0), "cpa.minFirstDeposit"),
        min_lots=_decimal(raw.get("minLots", 0), "cpa.minLots"),
        within_days=within,
    )


def _rebates(raw: Any) -> tuple[Rebate, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        raise PlanInvalid("rebates", f"must be a list of at most {MAX_RULES} rules")
    rules: list[Rebate] = []
    seen: dict[str, str] = {}  # upper-cased glob -> where it was first given
    catch_all: str | None = None
    for index, rule in enumerate(raw):
        where = f"rebates[{index}]"
        if not isinstance(rule, Mapping):
            raise PlanInvalid(where, 'must be an object {"symbols": [...], "perLot"}')
        _known(rule, REBATE_FIELDS, f"{where}.")
        globs = rule.get("symbols")
        if not isinstance(globs, list) or not 1 <= len(globs) <= MAX_GLOBS:
            raise PlanInvalid(f"{where}.symbols", f"must be a list of 1 to {MAX_GLOBS} globs")
        for position, glob in enumerate(globs):
            _check_glob(glob, f"{where}.symbols[{position}]", seen, catch_all)
            if set(glob) == {"*"}:
                catch_all = f"{where}.symbols[{position}]"
        if "perLot" not in rule:
            raise PlanInvalid(f"{where}.perLot", "is required")
        rules.append(Rebate(tuple(globs), _decimal(rule["perLot"], f"{where}.perLot")))
    return tuple(rules)


def _check_glob(glob: Any, where: str, seen: dict[str, str], catch_all: str | None) -> None:
    """Refuse a glob that can never match a symbol: characters no symbol has, longer than any
    symbol, the same as an earlier glob, or after one that matches everything."""
    if not isinstance(glob, str) or not glob:
        raise PlanInvalid(where, "must be a non-empty glob such as EURUSD, XAU* or *")
    if _GLOB.fullmatch(glob) is None:
        raise PlanInvalid(where, f"{glob[:40]!r} can never match: symbols are made of "
                                 f"{SYMBOL_ALPHABET}, and globs add * and ?")
    if len(glob.replace("*", "")) > 32:
        raise PlanInvalid(where, f"{glob[:40]!r} can never match: symbols are at most 32 "
                                 "characters")
    if catch_all is not None:
        raise PlanInvalid(where, f"{glob!r} can never match: {catch_all} matches every symbol "
                                 "first")
    key = glob.upper()
    if key in seen:
        raise PlanInvalid(where, f"{glob!r} can never match: {seen[key]} is the same glob")
    seen[key] = where


def _levels(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PlanInvalid("levels", 'must be an object {"mode": "override"|"split", "shares"}')
    _known(raw, LEVEL_FIELDS, "levels.")
    mode = raw.get("mode", "override")
    if mode not in MODES:
        raise PlanInvalid("levels.mode", f"must be one of {', '.join(MODES)}")
    shares_raw = raw.get("shares")
    if not isinstance(shares_raw, list) or not 1 <= len(shares_raw) <= MAX_LEVELS:
        raise PlanInvalid("levels.shares", f"must be a list of 1 to {MAX_LEVELS} shares, level 1 "
                                           "first")
    shares = tuple(_decimal(value, f"levels.shares[{index}]", high=MAX_FACTOR if mode ==
                            "override" else ONE) for index, value in enumerate(shares_raw))
    if mode == "split" and sum(shares) > ONE:
        raise PlanInvalid("levels.shares", f"split shares sum to {text(sum(shares, Decimal(0)))}, "
                                           "more than 1 (the whole base)")
    return {"mode": mode, "shares": shares}


def _tiers(raw: Any) -> tuple[Tier, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_TIERS:
        raise PlanInvalid("tiers", f"must be a list of at most {MAX_TIERS} tiers, lowest first")
    tiers: list[Tier] = []
    names: set[str] = set()
    for index, tier in enumerate(raw):
        where = f"tiers[{index}]"
        if not isinstance(tier, Mapping):
            raise PlanInvalid(where, 'must be an object {"name", "multiplier", thresholds…}')
        _known(tier, TIER_FIELDS, f"{where}.")
        name = tier.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_TIER_NAME \
                or not name.isprintable():
            raise PlanInvalid(f"{where}.name", f"must be 1 to {MAX_TIER_NAME} printable "
                                               "characters")
        if name in names:
            raise PlanInvalid(f"{where}.name", f"{name!r} is given twice")
        names.add(name)
        if "multiplier" not in tier:
            raise PlanInvalid(f"{where}.multiplier", "is required")
        active = tier.get("minActiveTraders")
        first_deposits = tier.get("minFirstDeposits")
        lots = tier.get("minLots")
        tiers.append(Tier(
            name=name,
            multiplier=_decimal(tier["multiplier"], f"{where}.multiplier", high=MAX_FACTOR),
            min_active_traders=(None if active is None
                                else _whole(active, f"{where}.minActiveTraders", 0, 10**9)),
            min_lots=None if lots is None else _decimal(lots, f"{where}.minLots"),
            min_first_deposits=(
                None if first_deposits is None
                else _whole(first_deposits, f"{where}.minFirstDeposits", 0, 10**9)
            ),
        ))
    return tuple(tiers)


def _known(body: Mapping[str, Any], known: frozenset[str], prefix: str) -> None:
    unknown = sorted(str(key)[:40] for key in set(body) - known)
    if unknown:
        raise PlanInvalid(f"{prefix}{unknown[0]}", f"is not a field here (known: "
                                                   f"{', '.join(sorted(known))})")


def _decimal(value: Any, where: str, high: Decimal = MAX_AMOUNT) -> Decimal:
    """A non-negative decimal with at most 8 places, given as a string or a JSON number (read
    exactly, never as a float), at most `high`."""
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value if value.is_finite() else None
    elif isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        number = Decimal(value)
    else:
        number = None
    if number is None or number < 0:
        raise PlanInvalid(where, "must be a decimal of at least 0, as a string like \"6.5\" or a "
                                 "number, ASCII digits")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_SCALE:
        raise PlanInvalid(where, f"has more than {MAX_SCALE} decimal places")
    if number > high:
        raise PlanInvalid(where, f"{text(number)} is more than {text(high)}")
    return number


def _whole(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, str) and is_ascii_digits(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PlanInvalid(where, f"must be a whole number from {low} to {high}")
    return value
