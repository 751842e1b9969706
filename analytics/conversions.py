"""Conversion events (edge/conversions.py writes them to a stream) as `invite.conversions` rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics import registration_codes
from analytics.insert import InsertOutcome, Table, insert_bisecting
from edge.errors import BadEvent
from edge.streams import decode_payload

CONVERSION_COLUMNS: Final = (
    ("event_id", "String"),
    ("event_type", "LowCardinality(String)"),
    ("ts", "DateTime64(3, 'UTC')"),
    ("user_id", "String"),
    ("ctid_trader_account_id", "String"),
    ("click_id", "String"),
    ("partner_id", "String"),
    ("ancestors", "Array(String)"),
    ("campaign", "String"),
    ("source", "LowCardinality(String)"),
)
CONVERSIONS_TABLE: Final = Table("conversions", CONVERSION_COLUMNS, ms_columns=(2,))
EVENT_TYPES: Final = frozenset({"registration", "reattribution", "kyc", "first_deposit"})
MAX_TEXT: Final = 512
MAX_ANCESTORS: Final = 64
_TS_MIN_MS: Final = 946_684_800_000  # 2000-01-01
_TS_MAX_MS: Final = 7_258_118_400_000  # 2200-01-01
_TEXT_FIELDS: Final = (
    "user_id", "ctid_trader_account_id", "click_id", "partner_id", "campaign", "source",
)


def conversion_row(event: Mapping[str, Any]) -> list[Any]:
    """The `invite.conversions` row of one event, in CONVERSION_COLUMNS order (ts in ms);
    BadEvent says what is wrong."""
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_TEXT:
        raise BadEvent("event_id is missing, empty or not a string")
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise BadEvent(
            f"event_type {str(event_type)[:32]!r} is not one of {', '.join(sorted(EVENT_TYPES))}"
        )
    ts = event.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool) or not _TS_MIN_MS <= ts < _TS_MAX_MS:
        raise BadEvent(f"ts {str(ts)[:32]!r} is not a time in ms since the epoch")
    text = {}
    for name in _TEXT_FIELDS:
        value = event.get(name, "")
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise BadEvent(f"{name} is not a string of at most {MAX_TEXT} characters")
        text[name] = value
    if not text["partner_id"]:
        raise BadEvent("partner_id is empty: only attributed conversions are recorded")
    ancestors = event.get("ancestors", [])
    if (
        not isinstance(ancestors, list) or len(ancestors) > MAX_ANCESTORS
        or not all(isinstance(a, str) and a for a in ancestors)
    ):
        raise BadEvent(f"ancestors is not a list of at most {MAX_ANCESTORS} partner ids")
    return [
        event_id, event_type, ts, text["user_id"], text["ctid_trader_account_id"],
        text["click_id"], text["partner_id"], ancestors, text["campaign"], text["source"],
    ]


def conversion_line(payload: bytes | str | None) -> tuple[str, int, bytes]:
    """(event_id, ts in ms, the line inserted) of a stream entry's field `e`; BadEvent says
    what is wrong with it."""
    row = conversion_row(decode_payload(payload))
    return row[0], row[2], CONVERSIONS_TABLE.encode(row)


def insert_conversions(
    client: Client, event_ids: Sequence[str], timestamps: Sequence[int], lines: Sequence[bytes],
    keys: Sequence[str], *, token_prefix: str,
) -> InsertOutcome:
    """Insert the rows; a retry carries the same token and is dropped by ClickHouse. A
    conversion recorded twice has one `event_id`, and `conversions` (a ReplacingMergeTree on
    it) keeps the latest, which the queries read FINAL. Then the link codes of the
    registrations' clicks are stored (analytics.registration_codes)."""
    outcome = InsertOutcome()
    insert_bisecting(
        client, CONVERSIONS_TABLE, lines, keys, list(range(len(lines))), token_prefix, outcome
    )
    refused = {index for index, _ in outcome.refused}
    registration_codes.fill_batch(
        client, [event_id for index, event_id in enumerate(event_ids) if index not in refused])
    return outcome
