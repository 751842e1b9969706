"""Registry pages as plain-text tables for a terminal: one row per item, columns padded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

MAX_CELL = 40

Column = tuple[str, Callable[[dict[str, Any]], object]]


def _date(ms: object) -> str:
    if not isinstance(ms, int) or ms <= 0:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


PARTNER_COLUMNS: tuple[Column, ...] = (
    ("PARTNER", lambda p: p["partnerId"]),
    ("NAME", lambda p: p["name"]),
    ("TYPE", lambda p: p["type"]),
    ("STATUS", lambda p: p["status"]),
    ("LEVEL", lambda p: p["level"]),
    ("PARENT", lambda p: p["parentPartnerId"]),
    ("CHILDREN", lambda p: p["childCount"]),
    ("DOWNLINE", lambda p: p["descendantCount"]),
    ("LINKS", lambda p: p["linkCount"]),
)
LINK_COLUMNS: tuple[Column, ...] = (
    ("CODE", lambda link: link["code"]),
    ("STATUS", lambda link: link["status"]),
    ("CAMPAIGN", lambda link: link["campaign"]),
    ("SUB-ID", lambda link: link["subId"]),
    ("CREATED", lambda link: _date(link["createdAt"])),
    ("URL", lambda link: link["url"]),
    ("DESTINATION", lambda link: link["destination"]),
)


def _cell(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    # One line per row, whatever a name holds; long values cut where the eye stops reading.
    text = "".join(char if char.isprintable() else " " for char in text)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def text_table(columns: Sequence[Column], items: Sequence[dict[str, Any]]) -> str:
    rows = [[title for title, _ in columns]]
    rows += [[_cell(value(item)) for _, value in columns] for item in items]
    widths = [max(len(row[index]) for row in rows) for index in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
