"""JSON read exactly: every non-integer number becomes a Decimal, never a float (money)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def loads(raw: bytes | str) -> Any:
    """JSON with every non-integer number as an exact Decimal; ValueError for bad JSON."""
    return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
