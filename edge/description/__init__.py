"""The description of the edge's routes (`invite edge`; `invite run` adds the analytics side's),
one module per room it describes."""

from __future__ import annotations

from typing import Final

from edge.description.hooks import HOOKS
from edge.description.public import PUBLIC
from edge.description.registry import REGISTRY
from edge.openapi import HEALTH, Description

EDGE: Final[Description] = PUBLIC + REGISTRY + HOOKS + HEALTH

__all__ = ["EDGE"]
