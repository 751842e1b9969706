"""The one spelling accepted for what is read from outside: numbers in ASCII digits ("²", "١٢٣",
"+1", " 1" and "1_000" are not numbers), UUIDs in canonical form (lower case, with dashes)."""

from __future__ import annotations

import re

from edge.errors import InvalidInput

_DIGITS = re.compile(r"[0-9]{1,19}")  # at most 19 digits: every such number fits in 64 bits
# What str(uuid.UUID(...)) prints; uuid.UUID() itself also takes upper case, braces, "urn:uuid:"
# and no dashes, which would be other spellings of one click id.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_ascii_digits(text: str) -> bool:
    """Whether `text` is 1 to 19 ASCII digits and nothing else."""
    return _DIGITS.fullmatch(text) is not None


def whole_number(text: str, name: str, low: int, high: int) -> int:
    """`text` as an int within low..high; InvalidInput naming `name` and the range otherwise."""
    if not is_ascii_digits(text) or not low <= int(text) <= high:
        raise InvalidInput(
            f"{name} must be a whole number from {low} to {high} in ASCII digits, "
            f"not {text[:20]!r}"
        )
    return int(text)


def is_canonical_uuid(text: str) -> bool:
    return CANONICAL_UUID.fullmatch(text) is not None
