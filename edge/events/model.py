"""Funnel events as the broker posts them, checked field by field and put in the one form the
stream carries (snake_case, ids and decimals as text, times in ms)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from edge.clock import now_ms
from edge.errors import InvalidEvents
from edge.exact_json import loads
from edge.spelling import is_ascii_digits
from edge.streams import EVENT_FIELDS as STREAM_FIELDS
from edge.streams import EVENT_TYPES as TYPES

MAX_BATCH: Final = 1000
MAX_EVENT_ID: Final = 128
EARLIEST_MS: Final = 946_684_800_000  # 2000-01-01
FUTURE_TOLERANCE_MS: Final = 5 * 60_000
MAX_SCALE: Final = 8  # decimal places an amount or a lot count may have
MAX_DECIMAL: Final = Decimal(10) ** 12  # amounts and lots below a trillion
_SMALLEST: Final = Decimal(1).scaleb(-MAX_SCALE)
MAX_ID: Final = 2**63 - 1
_EVENT_ID: Final = re.compile(r"[\x20-\x7e]{1,128}")
_DECIMAL_TEXT: Final = re.compile(r"-?[0-9]{1,13}(?:\.[0-9]{1,8})?")
# Unsigned, at most 12 whole digits: below MAX_DECIMAL with at most MAX_SCALE decimals as written.
_PLAIN_DECIMAL: Final = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,8}))?")
_SYMBOL: Final = re.compile(r"[A-Za-z0-9._/#:+-]{1,32}")
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_POSITION_ID: Final = re.compile(r"[\x21-\x7e]{1,64}")

COMMON: Final = frozenset({"eventId", "type", "ts", "userId", "ctidTraderAccountId"})
FIELDS: Final = {
    "account_opened": frozenset(),
    "kyc_approved": frozenset(),
    "deposit": frozenset({"amount", "originalAmount", "originalCurrency"}),
    "withdrawal": frozenset({"amount", "originalAmount", "originalCurrency"}),
    "trade": frozenset({"symbol", "lots", "commission", "markup", "positionId", "openedAt"}),
    "reversal": frozenset({"reverses"}),
}
_ALLOWED: Final = {event_type: COMMON | fields for event_type, fields in FIELDS.items()}


@dataclass(frozen=True, slots=True)
class Fault:
    index: int
    field: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


def parse_body(raw: bytes, ndjson: bool) -> list[Any]:
    """The events of a request body: {"events": [...]} or one JSON object a line (NDJSON)."""
    try:
        if ndjson:
            lines = [line for line in raw.decode("utf-8").splitlines() if line.strip()]
            events = [loads(line) for line in lines]
        else:
            body = loads(raw)
            if not isinstance(body, dict) or set(body) != {"events"}:
                raise InvalidEvents('send {"events": [...]} (or application/x-ndjson)', [])
            events = body["events"]
            if not isinstance(events, list):
                raise InvalidEvents('"events" must be a list of event objects', [])
    except (UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise InvalidEvents(f"the body is not valid JSON ({str(exc)[:120]})", []) from None
    if not 1 <= len(events) <= MAX_BATCH:
        raise InvalidEvents(f"send 1 to {MAX_BATCH} events at a time, not {len(events)}", [])
    return events


def check_events(events: Iterable[Any], source: str, first_index: int = 0) -> list[dict[str, str]]:
    """Every event in the stream's form; InvalidEvents naming each fault (all of them)."""
    now = now_ms()
    checked: list[dict[str, str]] = []
    faults: list[Fault] = []
    for index, event in enumerate(events, start=first_index):
        found, event_faults = check_event(event, index, now, source)
        faults.extend(event_faults)
        if found is not None:
            checked.append(found)
    if faults:
        shown = "; ".join(f"event {f.index}: {f.field}: {f.message}" for f in faults[:5])
        more = f" (and {len(faults) - 5} more)" if len(faults) > 5 else ""
        raise InvalidEvents(f"{len(faults)} fault(s), no event stored: {shown}{more}",
                            [fault.to_json() for fault in faults])
    return checked


def check_event(
    event: Any, index: int, now: int, source: str
) -> tuple[dict[str, str] | None, list[Fault]]:
    faults: list[Fault] = []

    def fault(field: str, message: str) -> None:
        faults.append(Fault(index, field, message))

    if type(event) is not dict and not isinstance(event, Mapping):
        return None, [Fault(index, "", "an event is a JSON object")]
    event_type = event.get("type")
    if event_type not in TYPES:
        fault("type", f"must be one of {', '.join(TYPES)}")
        return None, faults
    for name in sorted(event.keys() - _ALLOWED[event_type]):
        fault(str(name)[:40], f"is not a field of a {event_type} event")
    event_id = event.get("eventId")
    if not isinstance(event_id, str) or _EVENT_ID.fullmatch(event_id) is None:
        fault("eventId", f"must be 1 to {MAX_EVENT_ID} printable ASCII characters")
    row = dict.fromkeys(STREAM_FIELDS, "")
    row.update(event_id=event_id if isinstance(event_id, str) else "", event_type=event_type,
               source=source, received_at=str(now))
    row["ts"] = str(_instant(event.get("ts"), "ts", now, fault, required=True))
    user = _id(event, "userId", fault)
    account = _id(event, "ctidTraderAccountId", fault)
    row.update(user_id=user, ctid_trader_account_id=account)
    has_user, has_account = event.get("userId") is not None, event.get(
        "ctidTraderAccountId") is not None
    if event_type == "account_opened" and not (has_user and has_account):
        fault("userId" if not has_user else "ctidTraderAccountId",
              "an account_opened event links both: userId and ctidTraderAccountId")
    elif event_type == "kyc_approved" and not has_user:
        fault("userId", "is required: a positive whole number")
    elif not has_user and not has_account:
        fault("userId", "userId or ctidTraderAccountId is required: a positive whole number")
    if event_type in ("deposit", "withdrawal"):
        row["amount"] = _decimal(event, "amount", fault, positive=True, required=True)
        row["original_amount"] = _decimal(event, "originalAmount", fault, positive=True)
        currency = event.get("originalCurrency")
        if currency is not None:
            if isinstance(currency, str) and _CURRENCY.fullmatch(currency):
                row["original_currency"] = currency
            else:
                fault("originalCurrency", "must be an ISO 4217 code such as EUR")
    elif event_type == "trade":
        symbol = event.get("symbol")
        if isinstance(symbol, str) and _SYMBOL.fullmatch(symbol):
            row["symbol"] = symbol
        else:
            fault("symbol", "must be 1 to 32 of letters, digits and ._/#:+-")
        row["lots"] = _decimal(event, "lots", fault, positive=True, required=True)
        row["commission"] = _decimal(event, "commission", fault, required=True)
        row["markup"] = _decimal(event, "markup", fault, required=True)
        position = event.get("positionId")
        if position is not None:
            text = str(position) if isinstance(position, int) and not isinstance(
                position, bool) else position
            if isinstance(text, str) and _POSITION_ID.fullmatch(text):
                row["position_id"] = text
            else:
                fault("positionId", "must be 1 to 64 printable ASCII characters or a number")
        if event.get("openedAt") is not None:
            row["opened_at"] = str(_instant(event.get("openedAt"), "openedAt", now, fault))
    elif event_type == "reversal":
        reverses = event.get("reverses")
        if not isinstance(reverses, str) or _EVENT_ID.fullmatch(reverses) is None:
            fault("reverses", "must be the eventId of a deposit or a trade")
        elif reverses == event_id:
            fault("reverses", "an event cannot reverse itself")
        else:
            row["reverses"] = reverses
    return (None if faults else row), faults


def _instant(value: Any, name: str, now: int, fault: Any, required: bool = False) -> int:
    """ms since the epoch of an ISO 8601 time with zone or of ms; 0 (and a fault) if it is none."""
    if value is None:
        if required:
            fault(name, "is required: ISO 8601 with a zone, or ms since the epoch")
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        ms = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            fault(name, "is not an ISO 8601 time (2026-12-01T09:30:00Z) or ms since the epoch")
            return 0
        if parsed.tzinfo is None:
            fault(name, "needs a zone (Z or +01:00)")
            return 0
        try:
            ms = int(parsed.timestamp() * 1000)
        except (OverflowError, ValueError):
            fault(name, "is outside 2000-01-01 .. now + 5 minutes")
            return 0
    else:
        fault(name, "must be ISO 8601 with a zone, or ms since the epoch")
        return 0
    if not EARLIEST_MS <= ms <= now + FUTURE_TOLERANCE_MS:
        fault(name, "is outside 2000-01-01 .. now + 5 minutes")
        return 0
    return ms


def _id(event: Mapping[str, Any], name: str, fault: Any) -> str:
    value = event.get(name)
    if value is None:
        return ""
    if type(value) is int and 0 < value <= MAX_ID:  # the common case, checked first
        return str(value)
    if isinstance(value, str) and is_ascii_digits(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return str(value)
    fault(name, "must be a positive whole number (ASCII digits)")
    return ""


def _decimal(
    event: Mapping[str, Any], name: str, fault: Any, *, positive: bool = False,
    required: bool = False,
) -> str:
    """An exact decimal (a JSON number or a string of digits) as plain text, e.g. "250.5"."""
    value = event.get(name)
    if value is None:
        if required:
            fault(name, "is required: a decimal number")
        return ""
    if type(value) is str:  # the common case, without a Decimal: plain digits below the limit
        plain = _PLAIN_DECIMAL.fullmatch(value)
        if plain is not None:
            whole, fraction = plain.group(1).lstrip("0"), (plain.group(2) or "").rstrip("0")
            if fraction:
                return f"{whole or '0'}.{fraction}"
            if whole or not positive:
                return whole or "0"
    if isinstance(value, str):
        if _DECIMAL_TEXT.fullmatch(value) is None:
            fault(name, f"must be a decimal of ASCII digits with at most {MAX_SCALE} decimals")
            return ""
        number = Decimal(value)
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        number = Decimal(value)
    else:
        fault(name, "must be a decimal number (or a string of one)")
        return ""
    if not number.is_finite() or abs(number) >= MAX_DECIMAL:
        fault(name, f"must be a finite decimal below {MAX_DECIMAL:,}")
        return ""
    if number != number.quantize(_SMALLEST):
        fault(name, f"must be a decimal with at most {MAX_SCALE} decimals")
        return ""
    if number < 0 or (positive and number == 0):
        fault(name, "must be greater than 0" if positive else "must not be negative")
        return ""
    return format(number.normalize(), "f") if number != 0 else "0"
