"""Rows for the analytics tests, written straight into invite.clicks, conversions and partners.

The ClickHouse fixtures themselves (`clickhouse_session`, `clickhouse`: one chDB engine per
process, tables emptied before each test) come from tests/analytics/conftest.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.clickhouse import Client
from analytics.schema import DATABASE

# A fixed UTC day, so series and ranges do not depend on when the suite runs.
DAY = datetime(2025, 3, 10, tzinfo=UTC)

CLICK_DEFAULTS: dict[str, Any] = {
    "code": "dadMUv6",
    "kind": "person",
    "is_human": 1,
    "outcome": "credited",
    "partner_id": "sub-ib",
    "ancestors": ["master-ib"],
    "campaign": "launch",
    "sub_id": "",
    "destination": "https://register.broker.test/signup",
    "ip_hash": "0" * 32,
    "ip_prefix": "203.0.113.0/24",
    "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36",
    "referer": "https://t.me/some-channel",
    "referer_host": "t.me",
    "accept_language": "en-GB",
    "country": "DE",
    "device": "desktop",
    "os": "Windows",
    "browser": "Chrome",
    "bot_family": "",
    "first_click": 1,
    "method": "GET",
}
BOT: dict[str, Any] = {
    "kind": "preview", "is_human": 0, "bot_family": "TelegramBot", "country": ""
}


@dataclass(frozen=True)
class Tree:
    """Three levels: master-ib → sub-ib → affiliate, and an unrelated other-ib."""

    master: str = "master-ib"
    sub: str = "sub-ib"
    leaf: str = "affiliate"
    other: str = "other-ib"

    def ancestors(self, partner_id: str) -> list[str]:
        return {
            self.master: [],
            self.sub: [self.master],
            self.leaf: [self.master, self.sub],
            self.other: [],
        }[partner_id]


TREE = Tree()


def click(partner_id: str = TREE.sub, at: datetime = DAY, **overrides: Any) -> dict[str, Any]:
    """One row of invite.clicks: a person's credited click at `at` unless overridden."""
    click_id = overrides.pop("click_id", None) or uuid.uuid4()
    row = {
        **CLICK_DEFAULTS,
        "click_id": click_id,
        "ts": at,
        "partner_id": partner_id,
        "ancestors": TREE.ancestors(partner_id) if partner_id in _TREE_IDS else [],
        "visitor_id": str(click_id),
    }
    if overrides.get("outcome") in ("orphan", "unresolved"):
        row.update(partner_id="", ancestors=[], campaign="")
    row.update(overrides)
    return row


_TREE_IDS = {TREE.master, TREE.sub, TREE.leaf, TREE.other}


def insert_clicks(client: Client, rows: Sequence[dict[str, Any]]) -> None:
    """One insert, one part: inserting the same rows again leaves an unmerged duplicate."""
    columns = list(rows[0])
    client.insert(
        f"{DATABASE}.clicks", [[row[name] for name in columns] for row in rows],
        column_names=columns,
    )


def insert_registrations(
    client: Client, partner_id: str, count: int, at: datetime = DAY, **overrides: Any
) -> None:
    rows = []
    for _ in range(count):
        row = {
            "event_id": str(uuid.uuid4()),
            "event_type": "registration",
            "ts": at,
            "user_id": str(uuid.uuid4().int % 10**9),
            "ctid_trader_account_id": "",
            "click_id": str(uuid.uuid4()),
            "partner_id": partner_id,
            "ancestors": TREE.ancestors(partner_id) if partner_id in _TREE_IDS else [],
            "campaign": "launch",
            "source": "sso",
        }
        row.update(overrides)
        rows.append(row)
    columns = list(rows[0])
    client.insert(
        f"{DATABASE}.conversions", [[row[name] for name in columns] for row in rows],
        column_names=columns,
    )


def insert_tree(client: Client, tree: Tree = TREE) -> None:
    now = datetime.now(UTC)
    rows = [
        [partner_id, (tree.ancestors(partner_id) or [""])[-1], "ib", "active", partner_id,
         tree.ancestors(partner_id), len(tree.ancestors(partner_id)) + 1, now]
        for partner_id in (tree.master, tree.sub, tree.leaf, tree.other)
    ]
    client.insert(
        f"{DATABASE}.partners", rows,
        column_names=["partner_id", "parent_id", "type", "status", "name", "ancestors", "level",
                      "updated_at"],
    )


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
