"""The stream entry format: one JSON event in field `e`, read back or refused with the reason."""

from __future__ import annotations

import orjson
import pytest

from edge.errors import BadEvent
from edge.streams import decode_event
from tests.analytics.conftest import click_event


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"x": b"1"}, "no field 'e'"),
        ({b"e": b"{oops"}, "not JSON"),
        ({b"e": b"[1, 2]"}, "a JSON list, not an object"),
    ],
)
def test_unreadable_entries_are_refused_with_the_reason(
    fields: dict[bytes, bytes], reason: str
) -> None:
    with pytest.raises(BadEvent, match=reason):
        decode_event(fields)


def test_entries_decode_from_bytes_or_text_fields() -> None:
    event = click_event()
    assert decode_event({b"e": orjson.dumps(event)}) == event
    assert decode_event({"e": orjson.dumps(event).decode()}) == event
