"""Schema, views and the partners dimension on embedded ClickHouse; opening ClickHouse by URL."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from clickhouse_connect.driver.exceptions import OperationalError
from redis.asyncio import Redis

from analytics import partner_scope
from analytics.clickhouse import Client, open_clickhouse
from analytics.enrich import CLICK_COLUMNS, click_row
from analytics.partners_sync import PartnersSync
from analytics.schema import CLICK_VIEWS, DATABASE, MIGRATIONS, migrate, rebuild_views
from edge.errors import ConfigError
from edge.registry.destinations import DestinationPolicy
from edge.registry.edits import PartnerEdit
from edge.registry.keys import partner_key
from edge.registry.partners import PartnerRegistry
from tests.analytics.conftest import assert_exactly_once, click_event
from tests.conftest import SECRET, RedisServer

COLUMN_NAMES = [name for name, _ in CLICK_COLUMNS]
COLUMN_TYPES = [type_name for _, type_name in CLICK_COLUMNS]


def insert_clicks(clickhouse: Client, events: list[dict[str, object]], token: str) -> None:
    clickhouse.insert(
        "clicks", [click_row(event) for event in events], database=DATABASE,
        column_names=COLUMN_NAMES, column_type_names=COLUMN_TYPES,
        settings={"insert_deduplication_token": token},
    )


def test_migrate_twice_applies_nothing_the_second_time(clickhouse: Client) -> None:
    assert migrate(clickhouse) == []
    applied = clickhouse.command("SELECT count() FROM invite.schema_migrations FINAL")
    assert int(applied) == len(MIGRATIONS)  # type: ignore[call-overload]


def test_the_batchers_columns_are_the_clicks_table_columns(clickhouse: Client) -> None:
    described = clickhouse.query(
        "SELECT name, type FROM system.columns WHERE database = 'invite' "
        "AND table = 'clicks' AND name != 'inserted_at' ORDER BY position"
    ).result_rows
    assert [tuple(row) for row in described] == list(CLICK_COLUMNS)


def test_views_count_a_click_for_its_partner_its_ancestors_and_its_dimensions(
    clickhouse: Client,
) -> None:
    insert_clicks(clickhouse, [
        click_event(partner_id="sub", ancestors=["master", "ib"], visitor_id="v1"),
        click_event(partner_id="sub", ancestors=["master", "ib"], visitor_id="v1"),
        click_event(partner_id="ib", ancestors=["master"], visitor_id="v2"),
        click_event(partner_id="", ancestors=[], outcome="orphan", visitor_id="v3"),
    ], "views-1")

    downline = dict(clickhouse.query(
        "SELECT ancestor_id, sum(clicks) FROM invite.clicks_downline_hourly "
        "GROUP BY ancestor_id"
    ).result_rows)
    assert downline == {"master": 3, "ib": 3, "sub": 2}
    visitors = clickhouse.command(
        "SELECT uniqCombinedMerge(14)(visitors) FROM invite.clicks_downline_hourly "
        "WHERE ancestor_id = 'master'"
    )
    assert int(visitors) == 2  # type: ignore[call-overload]
    totals = dict(clickhouse.query(
        "SELECT outcome, sum(clicks) FROM invite.clicks_totals_hourly GROUP BY outcome"
    ).result_rows)
    assert totals == {"credited": 3, "orphan": 1}  # orphans are kept, under no partner
    by_partner = {row[0]: (row[1], row[2]) for row in clickhouse.query(
        "SELECT partner_id, ancestors, sum(clicks) FROM invite.clicks_partner_daily "
        "GROUP BY partner_id, ancestors"
    ).result_rows}
    assert by_partner == {"sub": (["master", "ib"], 2), "ib": (["master"], 1)}
    dimensions = dict(clickhouse.query(
        "SELECT dimension, groupUniqArray(value) FROM invite.clicks_breakdown_daily "
        "GROUP BY dimension"
    ).result_rows)
    assert dimensions == {
        "country": ["DE"], "device": ["desktop"], "os": ["Windows"], "browser": ["Chrome"],
        "referrer": ["google.com"],
    }
    assert_exactly_once(clickhouse, 4)


def test_an_insert_retried_with_its_token_counts_once_in_table_and_views(
    clickhouse: Client,
) -> None:
    events = [click_event() for _ in range(10)]
    for _ in range(3):
        clickhouse.insert(
            "clicks", [click_row(event) for event in events], database=DATABASE,
            column_names=COLUMN_NAMES, column_type_names=COLUMN_TYPES,
            settings={"insert_deduplication_token": "retry-1",
                      "deduplicate_blocks_in_dependent_materialized_views": 1},
        )
    assert_exactly_once(clickhouse, 10)


def test_rebuilding_the_views_gives_the_same_counts(clickhouse: Client) -> None:
    insert_clicks(clickhouse, [click_event(partner_id=f"p{i % 3}") for i in range(30)], "rb-1")
    before = {
        view.table: clickhouse.query(
            f"SELECT sum(clicks), uniqCombinedMerge(14)(visitors) FROM invite.{view.table}"  # noqa: S608
        ).result_rows
        for view in CLICK_VIEWS
    }
    rebuild_views(clickhouse)
    after = {
        view.table: clickhouse.query(
            f"SELECT sum(clicks), uniqCombinedMerge(14)(visitors) FROM invite.{view.table}"  # noqa: S608
        ).result_rows
        for view in CLICK_VIEWS
    }
    assert after == before


def test_the_views_migrations_count_clicks_recorded_before_them(clickhouse: Client) -> None:
    for view in CLICK_VIEWS:
        clickhouse.command(f"DROP VIEW invite.{view.table}_mv")
        clickhouse.command(f"DROP TABLE invite.{view.table}")
    clickhouse.command("DELETE FROM invite.schema_migrations WHERE version >= 2")
    insert_clicks(clickhouse, [click_event() for _ in range(25)], "before-views")

    # 4 and 8 (columns), 5, 7 and 9 (new tables) are idempotent too; 10 and 11 add views, 12 a
    # column and the views again, 13 fills a table again, 14 adds views, 18 rebuilds a table.
    assert migrate(clickhouse) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]

    assert_exactly_once(clickhouse, 25)
    tables = {row[0] for row in clickhouse.query(
        "SELECT name FROM system.tables WHERE database = 'invite'").result_rows}
    assert {"clicks_hourly", "clicks_dimensions_daily"}.isdisjoint(tables)


def test_an_interrupted_migration_6_runs_again_without_counting_a_click_twice(
    clickhouse: Client,
) -> None:
    insert_clicks(clickhouse, [click_event(partner_id=f"p{i % 3}") for i in range(20)], "m6")
    (migration,) = [m for m in MIGRATIONS if m.version == 6]
    swapped = next(
        i for i, statement in enumerate(migration.statements)
        if statement.startswith("EXCHANGE TABLES invite.clicks_downline_hourly ")
    )
    for statement in migration.statements[: swapped + 1]:  # stopped after a swap, before its drop
        clickhouse.command(statement)
    clickhouse.command("DELETE FROM invite.schema_migrations WHERE version = 6")

    assert migrate(clickhouse) == [6]

    assert_exactly_once(clickhouse, 20)
    leftovers = clickhouse.command(
        "SELECT count() FROM system.tables WHERE database = 'invite' "
        "AND name LIKE '%_small_granules'"
    )
    assert int(leftovers) == 0  # type: ignore[call-overload]


def test_view_tables_are_read_in_small_granules(clickhouse: Client) -> None:
    created = dict(clickhouse.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = 'invite'"
    ).result_rows)

    for view in CLICK_VIEWS:
        assert "index_granularity = 256" in created[view.table], view.table


def test_other_url_schemes_are_refused_without_showing_the_password() -> None:
    with pytest.raises(ConfigError) as refused:
        open_clickhouse("mysql://analyst:hunter2secret@db.internal:3306/")
    assert "hunter2secret" not in str(refused.value)
    assert "INVITE_CLICKHOUSE_URL" in str(refused.value)
    assert "analyst:***@db.internal:3306" in str(refused.value)


def test_an_unreachable_server_fails_without_showing_the_password() -> None:
    with pytest.raises(OperationalError) as failed:
        open_clickhouse("http://analyst:hunter2secret@127.0.0.1:9/")
    assert "hunter2secret" not in str(failed.value)


# --- the partners dimension ---------------------------------------------------------------------


def partners_table(clickhouse: Client) -> dict[str, tuple[object, ...]]:
    rows = clickhouse.query(
        "SELECT partner_id, parent_id, type, status, name, ancestors, level "
        "FROM invite.partners FINAL"
    ).result_rows
    return {str(row[0]): tuple(row[1:]) for row in rows}


@pytest.mark.servers
def test_partners_are_copied_with_their_tree_and_re_parenting_rewrites_the_subtree(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis_server.url, decode_responses=True)
        registry = PartnerRegistry(client, SECRET, DestinationPolicy(["register.broker.test"]))
        sync = PartnersSync(client, clickhouse)
        await registry.upsert("master", PartnerEdit.from_json({"type": "ib", "name": "Master IB"}))
        await registry.upsert(
            "ib-1", PartnerEdit.from_json({"type": "ib", "parentPartnerId": "master"})
        )
        await registry.upsert("sub-1", PartnerEdit.from_json({"parentPartnerId": "ib-1"}))
        await registry.upsert("other", PartnerEdit.from_json({"type": "affiliate"}))
        assert await sync.sync_once() == 4
        assert partners_table(clickhouse)["sub-1"] == (
            "ib-1", "individual", "active", "", ["master", "ib-1"], 3,
        )
        assert await sync.sync_once() == 0  # nothing changed, nothing written

        await registry.upsert(
            "ib-1", PartnerEdit.from_json({"parentPartnerId": "other", "status": "suspended"})
        )
        assert await sync.sync_once() == 2
        table = partners_table(clickhouse)
        assert table["ib-1"] == ("other", "ib", "suspended", "", ["other"], 2)
        assert table["sub-1"][4:] == (["other", "ib-1"], 3)
        assert table["master"] == ("", "ib", "active", "Master IB", [], 1)
        await client.aclose()

    asyncio.run(scenario())


@pytest.mark.servers
def test_a_token_revocation_is_copied_to_the_partners_table(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis_server.url, decode_responses=True)
        registry = PartnerRegistry(client, SECRET, DestinationPolicy(["register.broker.test"]))
        sync = PartnersSync(client, clickhouse)
        await registry.upsert("ib-rev", PartnerEdit.from_json({"type": "ib"}))
        await sync.sync_once()
        assert partner_scope.tokens_not_before(clickhouse, "ib-rev") == 0
        stamp = time.time_ns() // 1_000_000 + 1  # as DELETE /api/partners/{id}/tokens does
        await client.hset(partner_key("ib-rev"),
                          mapping={"tokens_not_before": stamp, "updated_at": stamp})
        assert await sync.sync_once() == 1
        assert partner_scope.tokens_not_before(clickhouse, "ib-rev") == stamp
        # Other edits keep the stamp.
        await registry.upsert("ib-rev", PartnerEdit.from_json({"name": "renamed"}))
        await sync.sync_once()
        assert partner_scope.tokens_not_before(clickhouse, "ib-rev") == stamp
        await client.aclose()

    asyncio.run(scenario())


@pytest.mark.servers
def test_a_partner_change_reaches_the_table_without_waiting_for_the_interval(
    redis_client: redis.Redis, redis_server: RedisServer, clickhouse: Client
) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis_server.url, decode_responses=True)
        feed = Redis.from_url(redis_server.url, decode_responses=True)
        registry = PartnerRegistry(client, SECRET, DestinationPolicy(["register.broker.test"]))
        sync = PartnersSync(client, clickhouse, interval_s=3600, feed=feed)
        task = asyncio.create_task(sync.run())
        while sync.passes < 1:
            assert not task.done()
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await registry.upsert("late", PartnerEdit.from_json({"type": "campaign", "name": "Spring"}))
        while "late" not in partners_table(clickhouse):
            assert time.monotonic() - started < 5, "the change was not synced"
            await asyncio.sleep(0.05)
        sync.stop()
        await asyncio.wait_for(task, 5)
        await client.aclose()
        await feed.aclose()

    asyncio.run(scenario())

