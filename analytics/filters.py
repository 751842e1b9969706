"""Which clicks a question is about: the ClickFilter every analytics question takes, read from the
query parameters one by one (each refused with its name), and shown back in answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from starlette.datastructures import QueryParams

from edge.clock import iso_utc
from edge.errors import InvalidInput
from edge.registry.model import PARTNER_ID_PATTERN, TAG_PATTERN
from edge.spelling import is_ascii_digits

DEFAULT_RANGE: Final = timedelta(days=30)
MAX_RANGE: Final = timedelta(days=400)
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC)
DEFAULT_BREAKDOWN_LIMIT: Final = 20
MAX_BREAKDOWN_LIMIT: Final = 100


@dataclass(frozen=True)
class ClickFilter:
    """Which clicks a question is about: a UTC range [start, end) and an optional partner scope.

    `scope_partner_id` is set for partner tokens: whatever else is asked, only clicks whose
    partner is that partner or has it among the ancestors recorded at click time are read.
    """

    start: datetime
    end: datetime
    partner_id: str | None = None
    include_downline: bool = False
    campaign: str | None = None
    scope_partner_id: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("from", self.start), ("to", self.end)):
            if value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
            if not EARLIEST <= value <= LATEST:
                raise InvalidInput(
                    f"{name} {iso_utc(value)} is outside {iso_utc(EARLIEST)}..{iso_utc(LATEST)}"
                )
        if self.start >= self.end:
            raise InvalidInput(f"from {iso_utc(self.start)} must be before to {iso_utc(self.end)}")
        if self.end - self.start > MAX_RANGE:
            raise InvalidInput(
                f"from..to spans {(self.end - self.start).days} days; at most "
                f"{MAX_RANGE.days} days are allowed"
            )

    @classmethod
    def last(cls, now: datetime, **scope: Any) -> ClickFilter:
        """The default window: the DEFAULT_RANGE ending now."""
        return cls(start=now - DEFAULT_RANGE, end=now, **scope)

    @property
    def partner_scoped(self) -> bool:
        """Reads only clicks of some partner or campaign, so orphans have no place in it."""
        return (
            self.partner_id is not None
            or self.scope_partner_id is not None
            or self.campaign is not None
        )


def filter_json(f: ClickFilter) -> dict[str, Any]:
    """The filter as answers show it back."""
    return {
        "from": iso_utc(f.start),
        "to": iso_utc(f.end),
        "partnerId": f.partner_id,
        "includeDownline": f.include_downline,
        "campaign": f.campaign,
    }


FILTER_PARAMETERS: Final = ("from", "to", "partnerId", "includeDownline", "campaign")
MAX_PARAMETER_LENGTH: Final = 200


def single_values(params: QueryParams, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters as a dict; unknown or repeated parameters are refused, so a typo
    (`includedownline`) cannot silently answer a different question."""
    values: dict[str, str] = {}
    for name, value in params.multi_items():
        if name not in allowed:
            raise InvalidInput(
                f"unknown parameter {name[:40]!r}; this route accepts {', '.join(allowed)}"
            )
        if name in values:
            raise InvalidInput(f"parameter {name} is given more than once")
        if len(value) > MAX_PARAMETER_LENGTH:
            raise InvalidInput(f"parameter {name} is longer than {MAX_PARAMETER_LENGTH} characters")
        values[name] = value
    return values


def parse_instant(name: str, raw: str, end_of_day: bool) -> datetime:
    """An ISO 8601 date or date-time, as UTC. A bare date in `to` means the end of that day.
    Instants outside EARLIEST..LATEST are refused here, before any arithmetic could overflow."""
    try:
        if "T" not in raw and " " not in raw and len(raw) <= 10:
            day = date.fromisoformat(raw)
            instant = datetime(day.year, day.month, day.day, tzinfo=UTC)
            if end_of_day and instant < LATEST:
                instant += timedelta(days=1)
        else:
            instant = datetime.fromisoformat(raw)
            instant = (
                instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
            )
    except ValueError:
        raise InvalidInput(
            f"{name} {raw[:40]!r} is not an ISO 8601 date (2025-05-01) or date-time "
            "(2025-05-01T12:00:00Z)"
        ) from None
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: not a UTC instant Python can hold
        raise _out_of_range(name, repr(raw[:40])) from None
    if not EARLIEST <= instant <= LATEST:
        raise _out_of_range(name, iso_utc(instant))
    return instant


def _out_of_range(name: str, shown: str) -> InvalidInput:
    return InvalidInput(f"{name} {shown} is outside {iso_utc(EARLIEST)}..{iso_utc(LATEST)}")


def parse_flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise InvalidInput(f"{name} {raw[:20]!r} must be true or false")


def parse_filter(
    values: dict[str, str], scope_partner_id: str | None, now: datetime
) -> ClickFilter:
    """The common filter of every analytics route. A partner token's requests are always confined
    to its subtree (`scope_partner_id`, None for the admin) and default to the partner itself."""
    start = parse_instant("from", values["from"], False) if "from" in values else None
    end = parse_instant("to", values["to"], True) if "to" in values else None
    if end is None:
        end = now if start is None or start < now else start + DEFAULT_RANGE
    if start is None:
        start = end - DEFAULT_RANGE
    partner_id = values.get("partnerId") or None
    if partner_id is not None and not PARTNER_ID_PATTERN.fullmatch(partner_id):
        raise InvalidInput(
            f"partnerId {partner_id[:80]!r} must be 1-64 characters of letters, digits and ._:@- "
            "starting with a letter or digit"
        )
    campaign = values.get("campaign") or None
    if campaign is not None and not TAG_PATTERN.fullmatch(campaign):
        raise InvalidInput(
            "campaign must be 1-128 characters of letters, digits, spaces and ._:@/+-"
        )
    return ClickFilter(
        start=start,
        end=end,
        partner_id=partner_id or scope_partner_id,
        include_downline=parse_flag("includeDownline", values.get("includeDownline", "")),
        campaign=campaign,
        scope_partner_id=scope_partner_id,
    )


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_BREAKDOWN_LIMIT
    if not is_ascii_digits(raw) or not 1 <= int(raw) <= MAX_BREAKDOWN_LIMIT:
        raise InvalidInput(
            f"limit {raw[:20]!r} must be a whole number from 1 to {MAX_BREAKDOWN_LIMIT}"
        )
    return int(raw)
