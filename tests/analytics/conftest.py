"""Embedded ClickHouse (chDB) once per session, emptied before each test; click events for it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from analytics.clickhouse import Client, open_clickhouse
from analytics.events.schema import ROLLUP_TABLES as EVENT_ROLLUP_TABLES
from analytics.schema import CLICK_VIEWS, STORES, migrate

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
STREAM = "invite:clicks"
TABLES = ("clicks", "conversions", "registration_codes", "partners", "events", "events_credited",
          "commissions", *STORES, *(view.table for view in CLICK_VIEWS),
          *EVENT_ROLLUP_TABLES)


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # One chDB data dir per process: every in-process test shares this one. Tests that kill a
    # batcher run it, and read its results, in subprocesses with their own data dir.
    directory: Path = tmp_path_factory.mktemp("chdb") / "clickhouse"
    return f"chdb://{directory}"


@pytest.fixture(scope="session")
def clickhouse_session(clickhouse_url: str) -> Iterator[Client]:
    client = open_clickhouse(clickhouse_url)
    migrate(client)
    yield client
    client.close()


@pytest.fixture
def clickhouse(clickhouse_session: Client) -> Client:
    for table in TABLES:
        clickhouse_session.command(f"TRUNCATE TABLE IF EXISTS invite.{table}")
    return clickhouse_session


def click_event(**overrides: Any) -> dict[str, Any]:
    """A click event as the edge writes it (README, "Click capture")."""
    click_id = str(uuid.uuid4())
    event: dict[str, Any] = {
        "click_id": click_id,
        "ts": time.time_ns() // 1_000_000,
        "code": "dadMUv6",
        "kind": "person",
        "outcome": "credited",
        "partner_id": "sub-1",
        "ancestors": ["master", "ib-1"],
        "campaign": "launch",
        "sub_id": "",
        "destination": "https://register.broker.test/signup",
        "ip_hash": "0" * 32,
        "ip_prefix": "203.0.113.0/24",
        "user_agent": CHROME_WINDOWS,
        "referer": "https://www.google.com/",
        "accept_language": "en-GB,en;q=0.9",
        "country": "DE",
        "first_click": True,
        "visitor_id": click_id,
        "method": "GET",
    }
    event.update(overrides)
    return event


def add_events(client: redis.Redis, events: list[dict[str, Any]], stream: str = STREAM) -> None:
    with client.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd(stream, {"e": orjson.dumps(event)})
        pipe.execute()


def counts(clickhouse: Client) -> dict[str, int]:
    """Rows and distinct click_ids in `clicks`, and what each view counted."""
    row = clickhouse.query(
        "SELECT count(), uniqExact(click_id), "
        "sumIf(length(ancestors) + 1, partner_id != ''), countIf(partner_id != ''), "
        "countIf(outcome = 'credited'), sumIf(length(ancestors), outcome = 'credited') "
        "FROM invite.clicks"
    ).result_rows[0]
    views = {
        view.table: int(
            # Table names from the schema's own constants.
            clickhouse.command(f"SELECT sum(clicks) FROM invite.{view.table}")  # type: ignore[arg-type]  # noqa: S608
        )
        for view in CLICK_VIEWS
    }
    return {
        "rows": int(row[0]), "click_ids": int(row[1]), "downline_rows": int(row[2]),
        "partner_rows": int(row[3]), "credited_rows": int(row[4]),
        "credited_ancestor_rows": int(row[5]), **views,
    }


def assert_exactly_once(clickhouse: Client, expected: int) -> None:
    """Every click once in `clicks` and once in every view (five dimension rows per credited
    click in the breakdown view, one per ancestor and its own partner in the downline view, five
    per ancestor of a credited click in the descendants' breakdown view)."""
    found = counts(clickhouse)
    assert found["rows"] == found["click_ids"] == expected, found
    assert found["clicks_totals_hourly"] == expected, found
    assert found["clicks_downline_hourly"] == found["downline_rows"], found
    assert found["clicks_partner_daily"] == found["partner_rows"], found
    assert found["clicks_breakdown_daily"] == 5 * found["credited_rows"], found
    assert found["clicks_descendants_breakdown_daily"] == 5 * found["credited_ancestor_rows"], found
