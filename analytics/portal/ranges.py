"""The periods a partner picks in the portal: four presets of whole UTC days, and months."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from analytics.commissions.months import check_period, next_month, previous_month
from edge.errors import InvalidInput

PRESETS: Final = {
    "7d": "7 days",
    "30d": "30 days",
    "month": "This month",
    "last-month": "Last month",
}
DEFAULT_PRESET: Final = "30d"


@dataclass(frozen=True)
class Range:
    preset: str
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive

    @property
    def label(self) -> str:
        return PRESETS[self.preset]

    @property
    def shown(self) -> str:
        """The days it covers, e.g. `1 May - 30 May 2025` (with an en dash)."""
        last = self.end - timedelta(days=1)
        first = f"{self.start.day} {self.start:%b}"
        if self.start.year != last.year:
            first += f" {self.start.year}"
        return f"{first} – {last.day} {last:%b} {last.year}"


def month_start(period: str) -> datetime:
    return datetime(int(period[:4]), int(period[5:7]), 1, tzinfo=UTC)


def current_period(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"


def parse_range(preset: str | None, now: datetime) -> Range:
    """The preset's days up to today (today included); InvalidInput names the choices."""
    chosen = preset or DEFAULT_PRESET
    if chosen not in PRESETS:
        raise InvalidInput(f"range {chosen[:20]!r} must be one of {', '.join(PRESETS)}")
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + timedelta(days=1)
    this_month = month_start(current_period(today))
    if chosen == "7d":
        return Range(chosen, today - timedelta(days=6), tomorrow)
    if chosen == "30d":
        return Range(chosen, today - timedelta(days=29), tomorrow)
    if chosen == "month":
        return Range(chosen, this_month, tomorrow)
    return Range(chosen, month_start(previous_month(current_period(today))), this_month)


def parse_month(raw: str | None, now: datetime) -> str:
    """A commissions month, YYYY-MM (default: this one)."""
    return current_period(now) if not raw else check_period(raw)


def month_label(period: str) -> str:
    return f"{month_start(period):%B %Y}"


def short_month(period: str) -> str:
    return f"{month_start(period):%b %Y}"


def neighbours(period: str) -> tuple[str, str]:
    """The months before and after."""
    return previous_month(period), next_month(period)
