"""Funnel events as a broker's back office posts them: batches of the contract's JSON, built
beforehand so that the load generator spends nothing on them while it is timed.

A batch is the mix of a live back office: mostly trades, then deposits and withdrawals, some
accounts opened and KYC approvals, and a reversal now and then (of a deposit or trade earlier in
the same batch, so that every batch is accepted whole whatever else was sent). Times are a mix
of ISO 8601 with a zone and ms since the epoch; amounts a mix of strings and numbers.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any, Final

import orjson

SYMBOLS: Final = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US30", "BTCUSD", "AUDUSD", "NAS100")
# Share of each type in a batch (reversals come on top, 0.5% of the deposits and trades).
MIX: Final = (("trade", 0.70), ("deposit", 0.12), ("withdrawal", 0.06),
              ("account_opened", 0.06), ("kyc_approved", 0.06))
REVERSAL_SHARE: Final = 0.005


def _amount(rng: random.Random) -> Any:
    value = f"{rng.paretovariate(1.2) * 100:.2f}"
    return value if rng.random() < 0.7 else float(value)  # strings mostly, numbers sometimes


def event(rng: random.Random, event_id: str, now_ms: int) -> dict[str, Any]:
    """One event of the mix (not a reversal), its time in the last 30 days."""
    event_type = rng.choices([t for t, _ in MIX], [w for _, w in MIX])[0]
    ts_ms = now_ms - rng.randrange(30 * 86_400_000)
    ts: Any = ts_ms if rng.random() < 0.5 else (
        datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"))
    user = rng.randrange(1, 200_000)
    found: dict[str, Any] = {"eventId": event_id, "type": event_type, "ts": ts}
    if event_type == "account_opened":
        found.update(userId=user, ctidTraderAccountId=10_000_000 + user)
    elif event_type == "kyc_approved":
        found["userId"] = str(user)
    elif event_type in ("deposit", "withdrawal"):
        found.update(userId=user, amount=_amount(rng))
        if rng.random() < 0.2:
            found.update(originalAmount=_amount(rng), originalCurrency="EUR")
    else:
        found.update(ctidTraderAccountId=10_000_000 + user, symbol=rng.choice(SYMBOLS),
                     lots=f"{rng.paretovariate(1.5) * 0.1:.2f}",
                     commission=f"{rng.random() * 7:.2f}", markup=f"{rng.random() * 3:.2f}",
                     positionId=rng.randrange(1, 10**9))
    return found


def batch_events(rng: random.Random, prefix: str, size: int, now_ms: int) -> list[dict[str, Any]]:
    """`size` events with ids `{prefix}-{n}`, a few of them reversals of earlier ones."""
    events: list[dict[str, Any]] = []
    reversible: list[str] = []
    for index in range(size):
        event_id = f"{prefix}-{index}"
        if reversible and rng.random() < REVERSAL_SHARE * 0.82:
            target = reversible.pop(rng.randrange(len(reversible)))
            events.append({"eventId": event_id, "type": "reversal", "ts": now_ms,
                           "userId": rng.randrange(1, 200_000), "reverses": target})
            continue
        found = event(rng, event_id, now_ms)
        if found["type"] in ("deposit", "trade"):
            reversible.append(event_id)
        events.append(found)
    return events


def batch_body(events: list[dict[str, Any]]) -> bytes:
    """The body of `POST /api/events`. The client's JSON encoder writes floats; the edge reads
    every non-integer number as an exact decimal."""
    return orjson.dumps({"events": events})


def batch_ids(prefix: str, size: int) -> list[str]:
    return [f"{prefix}-{index}" for index in range(size)]
