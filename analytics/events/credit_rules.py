"""The crediting rules, pure: a user's attributions over time, and the credited rows its events
should have (the partner at each event's time, reversals left out, the first-time deposit)."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

# Kinds of events that count in a figure (a reversal only cancels what it reverses).
COUNTED: Final = frozenset({"account_opened", "kyc_approved", "deposit", "withdrawal", "trade"})


@dataclass(frozen=True, slots=True)
class Attribution:
    """A registration or reattribution: from `ts` on, the user's events go to this partner."""

    ts: int
    partner_id: str
    ancestors: tuple[str, ...]
    campaign: str
    click_id: str
    # The registration click's sub_id, country, device, os, browser, referer_host and code.
    dims: tuple[str, ...] = ("", "", "", "", "", "", "")


UNCREDITED: Final = Attribution(0, "", (), "", "")
NO_DIMS: Final = ("", "", "", "", "", "", "")


def click_time_ms(click_id: str) -> int | None:
    """The millisecond a UUIDv7 click id was made (None for anything else)."""
    try:
        value = uuid.UUID(click_id)
    except ValueError:
        return None
    return value.int >> 80 if value.version == 7 else None


@dataclass
class Timeline:
    """A user's attributions, oldest first."""

    attributions: list[Attribution] = field(default_factory=list)

    def at(self, ts: int) -> Attribution:
        if not self.attributions:
            return UNCREDITED
        index = bisect.bisect_right([a.ts for a in self.attributions], ts) - 1
        return self.attributions[max(index, 0)]


@dataclass(frozen=True, slots=True)
class RawEvent:
    event_id: str
    event_type: str
    ts: int
    user_id: str
    account: str
    amount: Decimal
    lots: Decimal
    revenue: Decimal
    symbol: str
    reverses: str


def desired_rows(
    events: Iterable[RawEvent], user_id: str, timeline: Timeline, full: bool,
) -> dict[str, tuple[Any, ...]]:
    """The credited rows (CREDITED_COLUMNS order, sign 1) these events of one user should have.

    With `full`, `events` are all the user's events: reversed ones are marked `reversed` (they
    count in no figure, and the ledger credits their reversal), and the earliest deposit left is
    the FTD. Otherwise they are new events of a user whose
    FTD and attribution stand, none of them a deposit or reversal.
    """
    events = sorted(events, key=lambda e: (e.ts, e.event_id))
    reversed_ids = {e.reverses for e in events if e.event_type == "reversal"} if full else set()
    first_deposit = ""
    if full:
        deposits = [e for e in events if e.event_type == "deposit" and e.event_id not in
                    reversed_ids]
        first_deposit = deposits[0].event_id if deposits else ""
    rows: dict[str, tuple[Any, ...]] = {}
    for event in events:
        if event.event_type not in COUNTED:
            continue
        credit = timeline.at(event.ts)
        rows[event.event_id] = (
            event.event_id, event.event_type, event.ts, user_id, event.account,
            credit.partner_id, credit.ancestors, credit.campaign, *credit.dims[:1],
            credit.click_id, *credit.dims[1:6], event.amount, event.lots, event.revenue,
            event.symbol, 1 if event.event_id == first_deposit else 0,
            1 if event.event_id in reversed_ids else 0, credit.dims[6], 1,
        )
    return rows


RAW_COLUMNS: Final = (
    "event_id, event_type, toUnixTimestamp64Milli(ts), user_id, ctid_trader_account_id, amount, "
    "lots, commission + markup, symbol, reverses"
)


def raw_event(row: Sequence[Any]) -> RawEvent:
    return RawEvent(
        str(row[0]), str(row[1]), int(row[2]), str(row[3]), str(row[4]), Decimal(row[5]),
        Decimal(row[6]), Decimal(row[7]), str(row[8]), str(row[9]),
    )
