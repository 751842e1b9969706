"""Commission periods are calendar months in UTC, written YYYY-MM."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from edge.errors import InvalidInput

_PERIOD: Final = re.compile(r"(20[0-9]{2}|21[0-9]{2})-(0[1-9]|1[0-2])")


def check_period(text: str) -> str:
    """A period as given in a path or parameter; InvalidInput unless YYYY-MM (2000-2199)."""
    if _PERIOD.fullmatch(text) is None:
        raise InvalidInput(f"period {text[:20]!r} must be a month written YYYY-MM (2000-2199)")
    return text


def month_of(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def start_ms(period: str) -> int:
    """The first millisecond of the month."""
    year, month = int(period[:4]), int(period[5:7])
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def next_month(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def previous_month(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year - (month == 1):04d}-{(month - 2) % 12 + 1:02d}"


def end_ms(period: str) -> int:
    """The first millisecond after the month."""
    return start_ms(next_month(period))


def months_between(first: str, last: str) -> list[str]:
    """first..last inclusive (empty when last is before first)."""
    found: list[str] = []
    month = first
    while month <= last:
        found.append(month)
        month = next_month(month)
    return found
