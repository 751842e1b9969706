"""Schema migration 12: the events credited before it get the link code of their registration's
click, the views are made again with it, and a rerun after an interruption changes nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from analytics.clickhouse import Client
from analytics.events import queries as funnel_events
from analytics.events.schema import (
    CREDITED_COLUMNS,
    CREDITED_DDL,
    MIGRATION_8_EVENTS,
    MIGRATION_11_EVENTS,
    ROLLUP_TABLES,
)
from analytics.filters import ClickFilter
from analytics.schema import MIGRATIONS, migrate
from tests.analytics.fixtures_api import DAY, TREE, click, insert_clicks

BEFORE_12 = [name for name, _ in CREDITED_COLUMNS if name != "code"]
F = ClickFilter(start=DAY, end=DAY + timedelta(days=2))


def as_before_12(clickhouse: Client) -> None:
    """events_credited and the funnel's views as migration 11 left them (no code)."""
    for table in ROLLUP_TABLES:
        clickhouse.command(f"DROP VIEW IF EXISTS invite.{table}_mv")
        clickhouse.command(f"DROP TABLE IF EXISTS invite.{table}")
    clickhouse.command("DROP TABLE invite.events_credited")
    for statement in (CREDITED_DDL, *MIGRATION_8_EVENTS, *MIGRATION_11_EVENTS):
        clickhouse.command(statement)
    clickhouse.command("DELETE FROM invite.schema_migrations WHERE version = 12")


def credited(event_id: str, user: str, click_id: str, amount: str, sign: int = 1) -> list[Any]:
    by_name = {
        "event_id": event_id, "event_type": "deposit", "ts": DAY + timedelta(hours=3),
        "user_id": user, "ctid_trader_account_id": "", "partner_id": TREE.leaf,
        "ancestors": TREE.ancestors(TREE.leaf), "campaign": "", "sub_id": "",
        "click_id": click_id, "country": "DE", "device": "desktop", "os": "Linux",
        "browser": "Chrome", "referer_host": "", "amount": Decimal(amount), "lots": Decimal(0),
        "broker_revenue": Decimal(0), "symbol": "", "is_first_deposit": 1, "reversed": 0,
        "sign": sign,
    }
    return [by_name[name] for name in BEFORE_12]


@pytest.fixture
def before_12(clickhouse: Client) -> dict[str, str]:
    """Three users' deposits credited before migration 12: through link L1, link L2 (once
    re-credited: a cancelled row and the same again), and a click no longer in `clicks`."""
    as_before_12(clickhouse)
    clicks = {"L1": str(uuid.uuid4()), "L2": str(uuid.uuid4()), "gone": str(uuid.uuid4())}
    insert_clicks(clickhouse, [click(TREE.leaf, click_id=uuid.UUID(clicks[code]), code=code)
                               for code in ("L1", "L2")])
    rows = [credited("d1", "1", clicks["L1"], "500"), credited("d2", "2", clicks["L2"], "200"),
            credited("d3", "3", clicks["gone"], "70"), credited("d4", "4", "", "5")]
    clickhouse.insert("invite.events_credited", rows, column_names=BEFORE_12)
    clickhouse.insert("invite.events_credited", [credited("d2", "2", clicks["L2"], "200", -1),
                                                 credited("d2", "2", clicks["L2"], "200")],
                      column_names=BEFORE_12)
    return clicks


def codes(clickhouse: Client) -> dict[str, str]:
    return {str(event): str(code) for event, code in clickhouse.query(
        "SELECT event_id, code FROM invite.events_credited GROUP BY event_id, code "
        "HAVING sum(sign) > 0").result_rows}


def check_after_12(clickhouse: Client) -> None:
    assert codes(clickhouse) == {"d1": "L1", "d2": "L2", "d3": "", "d4": ""}
    assert int(clickhouse.command("SELECT sum(sign) FROM invite.events_credited")) == 4
    by_link = funnel_events.figures_by_key(clickhouse, F, "code", ["L1", "L2", ""])
    assert {code: (fig.depositors, fig.deposit_amount) for code, fig in by_link.items()} == {
        "L1": (1, Decimal(500)), "L2": (1, Decimal(200)), "": (2, Decimal(75))}
    leftovers = clickhouse.command(
        "SELECT count() FROM system.tables WHERE database = 'invite' AND name LIKE '%_12'")
    assert int(leftovers) == 0  # type: ignore[call-overload]


def test_migration_12_gives_the_credited_events_their_links_code(
    clickhouse: Client, before_12: dict[str, str]
) -> None:
    marks = "SELECT inserted_at FROM invite.events_credited WHERE event_id = 'd1'"
    inserted_at = clickhouse.command(marks)

    assert migrate(clickhouse) == [12]

    check_after_12(clickhouse)
    # A row keeps when it was credited (the commissions worker reads its new rows by it); a
    # cancelled row and its cancellation may be collapsed by the copy.
    assert clickhouse.command(marks) == inserted_at
    # The views are fed again: a new event through L1 shows at once.
    clickhouse.insert("invite.events_credited",
                      [[*credited("d5", "5", before_12["L1"], "30"), "L1"]],
                      column_names=[*BEFORE_12, "code"])
    by_link = funnel_events.figures_by_key(clickhouse, F, "code", ["L1"])
    assert by_link["L1"].depositors == 2
    assert by_link["L1"].deposit_amount == Decimal(530)


def test_an_interrupted_migration_12_runs_again_without_a_row_twice(
    clickhouse: Client, before_12: dict[str, str]
) -> None:
    (migration,) = [m for m in MIGRATIONS if m.version == 12]
    swapped = next(i for i, statement in enumerate(migration.statements)
                   if statement.startswith("EXCHANGE TABLES"))
    for statement in migration.statements[: swapped + 1]:  # stopped after the swap
        clickhouse.command(statement)

    assert migrate(clickhouse) == [12]

    check_after_12(clickhouse)
