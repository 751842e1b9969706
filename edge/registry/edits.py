"""Typed edits of the registry: what the admin API reads from a JSON body and the CLI from its
arguments, checked the same way for both before the registry applies them."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.errors import InvalidInput
from edge.registry.model import (
    LINK_STATUSES,
    PARTNER_STATUSES,
    PARTNER_TYPES,
    PLAN_ID_PATTERN,
    TAG_PATTERN,
)

MAX_NAME_LENGTH = 200


class Keep(enum.Enum):
    """A field the edit leaves as it is (None, where a field can be cleared, clears it)."""

    KEEP = "keep"


KEEP = Keep.KEEP

PARTNER_FIELDS = frozenset(
    {"parentPartnerId", "name", "type", "status", "destination", "webhookUrl", "ctidUserId",
     "planId"}
)
LINK_FIELDS = frozenset({"campaign", "subId", "destination", "alias"})
LINK_PATCH_FIELDS = frozenset({"status", "destination"})


@dataclass(frozen=True)
class PartnerEdit:
    """Create or update a partner. `parent_id` None makes it a root; `name`, `type` and `status`
    None leave them as they are (a new partner is an active individual)."""

    parent_id: str | Keep | None = KEEP
    name: str | None = None
    type: str | None = None
    status: str | None = None
    destination: str | Keep | None = KEEP  # checked against the allow-list by the registry
    webhook_url: str | Keep | None = KEEP
    ctid_user_id: int | Keep | None = KEEP
    plan_id: str | Keep | None = KEEP  # None: the nearest ancestor's plan applies

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in PARTNER_TYPES:
            raise InvalidInput(f"type must be one of {', '.join(PARTNER_TYPES)}")
        if self.status is not None and self.status not in PARTNER_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(PARTNER_STATUSES)}")
        if self.name is not None and len(self.name) > MAX_NAME_LENGTH:
            raise InvalidInput(f"name must be a string of at most {MAX_NAME_LENGTH} characters")
        if isinstance(self.ctid_user_id, int) and self.ctid_user_id < 1:
            raise InvalidInput(_CTID_USER_RULE)
        if isinstance(self.plan_id, str) and not PLAN_ID_PATTERN.fullmatch(self.plan_id):
            raise InvalidInput(_PLAN_ID_RULE)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PartnerEdit:
        """The edit a `PUT /api/partners/{id}` body asks for; InvalidInput names what is wrong."""
        _refuse_unknown(body, PARTNER_FIELDS)
        parent = body.get("parentPartnerId", KEEP)
        if parent is not KEEP and parent is not None and not isinstance(parent, str):
            raise InvalidInput("parentPartnerId must be a string or null")
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidInput(f"name must be a string of at most {MAX_NAME_LENGTH} characters")
        ctid_user = body.get("ctidUserId", KEEP)
        if ctid_user is not KEEP and ctid_user is not None and (
            not isinstance(ctid_user, int) or isinstance(ctid_user, bool)
        ):
            raise InvalidInput(_CTID_USER_RULE)
        return cls(
            parent_id=KEEP if parent is KEEP else (parent or None),
            name=name,
            type=_choice(body, "type", PARTNER_TYPES),
            status=_choice(body, "status", PARTNER_STATUSES),
            destination=_url(body, "destination", "destination must be a URL string"),
            webhook_url=_url(
                body, "webhookUrl", "webhookUrl must be an http(s) URL string or null"
            ),
            ctid_user_id=ctid_user,
            plan_id=_plan_id(body),
        )


@dataclass(frozen=True)
class LinkEdit:
    """A new link of a partner; the alias and destination are checked by the registry (they need
    its code codec and allow-list)."""

    campaign: str | None = None
    sub_id: str | None = None
    destination: str | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        for key, value in (("campaign", self.campaign), ("subId", self.sub_id)):
            if value is not None:
                _tag(key, value)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> LinkEdit:
        _refuse_unknown(body, LINK_FIELDS)
        for key in ("campaign", "subId"):
            if body.get(key) is not None and not isinstance(body[key], str):
                _tag(key, None)
        destination = body.get("destination")
        if destination is not None and not isinstance(destination, str):
            raise InvalidInput("destination must be a URL string")
        alias = body.get("alias")
        if alias is not None and not isinstance(alias, str):
            raise InvalidInput("alias must be a string")
        return cls(
            campaign=body.get("campaign"), sub_id=body.get("subId"), destination=destination,
            alias=alias,
        )


@dataclass(frozen=True)
class LinkPatch:
    """A change to a link: disable or enable it, change or clear (None) its destination; the
    destination is checked against the allow-list by the registry, as at creation."""

    status: str | None = None
    destination: str | Keep | None = KEEP

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in LINK_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(LINK_STATUSES)}")

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> LinkPatch:
        _refuse_unknown(body, LINK_PATCH_FIELDS)
        if "status" in body and body["status"] not in LINK_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(LINK_STATUSES)}")
        return cls(
            status=body.get("status"),
            destination=_url(body, "destination", "destination must be a URL string or null"),
        )


_CTID_USER_RULE = "ctidUserId must be a positive whole number (a cTrader ID userId)"
_PLAN_ID_RULE = (
    "planId must be null or 1-64 characters of letters, digits and ._:@- starting with a letter "
    "or digit"
)


def _plan_id(body: Mapping[str, Any]) -> str | Keep | None:
    if "planId" not in body:
        return KEEP
    value = body["planId"]
    if value is not None and (not isinstance(value, str) or not PLAN_ID_PATTERN.fullmatch(value)):
        raise InvalidInput(_PLAN_ID_RULE)
    return value


def _refuse_unknown(body: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = set(body) - known
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")


def _choice(body: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if value not in choices:
        raise InvalidInput(f"{key} must be one of {', '.join(choices)}")
    return str(value)


def _url(body: Mapping[str, Any], key: str, rule: str) -> str | Keep | None:
    if key not in body:
        return KEEP
    value = body[key]
    if value is not None and not isinstance(value, str):
        raise InvalidInput(rule)
    return value


def _tag(key: str, value: str | None, pattern: re.Pattern[str] = TAG_PATTERN) -> None:
    if value is None or not pattern.fullmatch(value):
        raise InvalidInput(f"{key} must be 1-128 characters of letters, digits, spaces and ._:@/+-")
