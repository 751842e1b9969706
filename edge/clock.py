"""Time as the project spells it: milliseconds since the epoch, and one ISO 8601 form (UTC, ms)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso_utc(instant: datetime | int) -> str:
    """`2026-12-01T09:30:00.000Z`: a datetime (timezone-aware) or ms since the epoch, in UTC."""
    if isinstance(instant, int):
        instant = datetime.fromtimestamp(instant / 1000, UTC)
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
