"""Numbers in ASCII digits only, UUIDs in their canonical form only."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import InvalidInput
from edge.spelling import is_ascii_digits, is_canonical_uuid, whole_number


@pytest.mark.parametrize("text", ["²", "١٢٣", "７", "५", "+1", "-1", " 1", "1 ", "1_000", "",
                                  "1\n", "0x10", "1e3", "9" * 20])
def test_only_ascii_digits_are_a_number(text: str) -> None:
    assert not is_ascii_digits(text)
    with pytest.raises(InvalidInput, match="limit must be a whole number from 1 to 100"):
        whole_number(text, "limit", 1, 100)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_every_whole_number_in_ascii_digits_is_read_back(number: int) -> None:
    assert is_ascii_digits(str(number))
    assert whole_number(str(number), "n", 0, 2**63 - 1) == number


def test_a_uuid_has_one_canonical_spelling() -> None:
    value = uuid.uuid4()
    assert is_canonical_uuid(str(value))
    for other in (str(value).upper(), value.hex, "{" + str(value) + "}", value.urn,
                  str(value) + "\n"):
        assert not is_canonical_uuid(other)
