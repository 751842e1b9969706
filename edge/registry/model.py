"""Partners and links as the registry stores and the API shows them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from edge.errors import InvalidInput
from edge.registry.links import LinkCodec

PARTNER_TYPES = ("individual", "ib", "affiliate", "campaign")
PARTNER_STATUSES = ("active", "suspended")
LINK_STATUSES = ("active", "disabled")
MAX_TREE_DEPTH = 32  # levels of partners, the root's included
PARTNER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
# Commission plans: the same spelling as partner ids.
PLAN_ID_PATTERN = PARTNER_ID_PATTERN
# Campaigns and sub-IDs.
TAG_PATTERN = re.compile(r"[A-Za-z0-9._:@ /+-]{1,128}")


def check_partner_id(partner_id: str) -> str:
    if not PARTNER_ID_PATTERN.fullmatch(partner_id):
        raise InvalidInput(
            f"partnerId {partner_id[:80]!r} must be 1-64 characters of letters, digits and ._:@- "
            "starting with a letter or digit"
        )
    return partner_id


@dataclass(frozen=True, slots=True)
class Partner:
    partner_id: str
    num: int
    parent_id: str | None
    type: str
    status: str
    name: str | None
    destination: str | None
    ancestors: tuple[str, ...]  # root first, without the partner itself
    created_at: int
    updated_at: int
    webhook_url: str | None = None
    ctid_user_id: int | None = None
    plan_id: str | None = None  # its own; None: the nearest ancestor's applies

    @property
    def level(self) -> int:
        return len(self.ancestors) + 1

    @property
    def active(self) -> bool:
        return self.status == "active"

    def to_json(self) -> dict[str, Any]:
        return {
            "partnerId": self.partner_id,
            "parentPartnerId": self.parent_id,
            "type": self.type,
            "status": self.status,
            "name": self.name,
            "destination": self.destination,
            "level": self.level,
            "ancestors": list(self.ancestors),
            "webhookUrl": self.webhook_url,
            "ctidUserId": self.ctid_user_id,
            "planId": self.plan_id,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    @classmethod
    def from_hash(cls, partner_id: str, fields: dict[str, str]) -> Partner:
        return cls(
            partner_id=partner_id,
            num=int(fields["num"]),
            parent_id=fields.get("parent") or None,
            type=fields.get("type") or "individual",
            status=fields.get("status") or "active",
            name=fields.get("name") or None,
            destination=fields.get("destination") or None,
            ancestors=tuple(orjson.loads(fields.get("ancestors") or "[]")),
            created_at=int(fields.get("created_at") or 0),
            updated_at=int(fields.get("updated_at") or 0),
            webhook_url=fields.get("webhook_url") or None,
            ctid_user_id=int(fields["ctid_user"]) if fields.get("ctid_user") else None,
            plan_id=fields.get("plan") or None,
        )


@dataclass(frozen=True, slots=True)
class Link:
    code: str
    partner_num: int
    link_num: int
    partner_id: str
    alias: str | None
    campaign: str | None
    sub_id: str | None
    destination: str | None
    created_at: int
    status: str = "active"  # a disabled link answers like an unknown code
    updated_at: int = 0

    @property
    def shown_code(self) -> str:
        """The code its URL carries: the alias, else the generated code."""
        return self.alias or self.code

    def to_json(self, base_url: str) -> dict[str, Any]:
        shown = self.alias or self.code
        return {
            "code": shown,
            "generatedCode": self.code,
            "alias": self.alias,
            "url": f"{base_url}/r/{shown}",
            "partnerId": self.partner_id,
            "campaign": self.campaign,
            "subId": self.sub_id,
            "destination": self.destination,
            "status": self.status,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at or self.created_at,
        }

    @classmethod
    def from_hash(cls, codec: LinkCodec, fields: dict[str, str]) -> Link:
        partner_num, link_num = int(fields["pnum"]), int(fields["lnum"])
        return cls(
            code=codec.encode(partner_num, link_num),
            partner_num=partner_num,
            link_num=link_num,
            partner_id=fields["partner_id"],
            alias=fields.get("alias") or None,
            campaign=fields.get("campaign") or None,
            sub_id=fields.get("sub_id") or None,
            destination=fields.get("destination") or None,
            created_at=int(fields.get("created_at") or 0),
            status=fields.get("status") or "active",
            updated_at=int(fields.get("updated_at") or 0),
        )
