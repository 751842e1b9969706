"""What the registry's lists take and give: typed list queries (the admin API reads them from a
query string, the CLI from its arguments), opaque cursors and pages."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from edge.errors import InvalidInput
from edge.registry.model import (
    LINK_STATUSES,
    MAX_TREE_DEPTH,
    PARTNER_STATUSES,
    check_partner_id,
)
from edge.spelling import is_ascii_digits, whole_number

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_SEARCH_LENGTH = 200
DEFAULT_TREE_DEPTH = 3
MAX_CURSOR_LENGTH = 200
_CURSOR_SYNTAX = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_CURSOR_LENGTH}}}")
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no", "")

Item = TypeVar("Item")


@dataclass(frozen=True)
class Page(Generic[Item]):
    items: list[Item]
    next_cursor: str | None


def encode_cursor(kind: str, position: str) -> str:
    """An opaque cursor: where the next page of a `kind` of list starts."""
    return base64.urlsafe_b64encode(orjson.dumps([kind, position])).rstrip(b"=").decode()


def decode_cursor(kind: str, cursor: str) -> str:
    refused = InvalidInput(
        f"cursor {cursor[:40]!r} is not one this list gave: pass the nextCursor of the previous "
        "page, or no cursor to start again"
    )
    if _CURSOR_SYNTAX.fullmatch(cursor) is None:
        raise refused
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise refused from None
    if not (isinstance(value, list) and len(value) == 2 and value[0] == kind
            and isinstance(value[1], str)):
        raise refused
    position: str = value[1]
    return position


def query_parameters(items: Iterable[tuple[str, str]], known: Iterable[str]) -> dict[str, str]:
    """A query string as a dict; a parameter it does not know, or one given twice, is a 422 (a
    mistyped filter must not quietly list everything)."""
    allowed = tuple(known)
    found: dict[str, str] = {}
    for name, value in items:
        if name not in allowed:
            raise InvalidInput(
                f"unknown parameter {name[:40]!r}: this list takes {', '.join(allowed)}"
            )
        if name in found:
            raise InvalidInput(f"parameter {name!r} is given more than once")
        found[name] = value
    return found


def parse_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    return whole_number(text, "limit", 1, MAX_LIMIT)


def parse_flag(name: str, text: str | None) -> bool:
    if text is None or text.lower() in _FALSE:
        return False
    if text.lower() in _TRUE:
        return True
    raise InvalidInput(f"{name} {text[:20]!r} must be true or false")


def _choice(name: str, value: str | None, choices: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if value not in choices:
        raise InvalidInput(f"{name} {value[:40]!r} must be one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class PartnerQuery:
    """Which partners a page lists: `parent_id`'s direct children, or the roots (partners without a
    parent), or everyone; `search` matches id or name, any case, anywhere in them."""

    parent_id: str | None = None
    roots: bool = False
    search: str | None = None
    status: str | None = None
    limit: int = DEFAULT_LIMIT
    after: str | None = None  # the last partner id of the previous page
    folded_search: str = field(init=False, default="")

    PARAMETERS = ("parent", "roots", "q", "status", "limit", "cursor")

    def __post_init__(self) -> None:
        if self.parent_id is not None:
            try:
                check_partner_id(self.parent_id)
            except InvalidInput as error:
                raise InvalidInput("parent" + error.message.removeprefix("partnerId")) from None
            if self.roots:
                raise InvalidInput("give parent or roots=true, not both")
        if self.search is not None and len(self.search) > MAX_SEARCH_LENGTH:
            raise InvalidInput(f"q is longer than {MAX_SEARCH_LENGTH} characters")
        _choice("status", self.status, PARTNER_STATUSES)
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        object.__setattr__(self, "folded_search", (self.search or "").casefold())

    @classmethod
    def from_params(cls, items: Iterable[tuple[str, str]]) -> PartnerQuery:
        params = query_parameters(items, cls.PARAMETERS)
        cursor = params.get("cursor")
        after = decode_cursor("partners", cursor) if cursor else None
        if after is not None:
            try:
                check_partner_id(after)
            except InvalidInput:
                raise InvalidInput("cursor is not one this list gave") from None
        return cls(
            parent_id=params.get("parent") or None,
            roots=parse_flag("roots", params.get("roots")),
            search=params.get("q") or None,
            status=_choice("status", params.get("status"), PARTNER_STATUSES),
            limit=parse_limit(params.get("limit")),
            after=after,
        )


@dataclass(frozen=True)
class LinkQuery:
    """Which of a partner's links a page lists, newest first."""

    status: str | None = None
    limit: int = DEFAULT_LIMIT
    before: int | None = None  # the link number the previous page ended with

    PARAMETERS = ("status", "limit", "cursor")

    def __post_init__(self) -> None:
        _choice("status", self.status, LINK_STATUSES)
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be a whole number from 1 to {MAX_LIMIT}")

    @classmethod
    def from_params(cls, items: Iterable[tuple[str, str]]) -> LinkQuery:
        params = query_parameters(items, cls.PARAMETERS)
        cursor = params.get("cursor")
        before = decode_cursor("links", cursor) if cursor else None
        if before is not None and (not is_ascii_digits(before) or int(before) < 1):
            raise InvalidInput("cursor is not one this list gave")
        return cls(
            status=_choice("status", params.get("status"), LINK_STATUSES),
            limit=parse_limit(params.get("limit")),
            before=int(before) if before is not None else None,
        )


def parse_depth(items: Iterable[tuple[str, str]]) -> int:
    params = query_parameters(items, ("depth",))
    text = params.get("depth")
    return DEFAULT_TREE_DEPTH if text is None else whole_number(text, "depth", 1, MAX_TREE_DEPTH)


def page_json(page: Page[Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"items": items, "nextCursor": page.next_cursor}
