"""How long raw clicks are kept: the TTL on `invite.clicks`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.clickhouse import Client
from analytics.retention import apply_retention, retention_days
from tests.analytics.fixtures_api import click, insert_clicks

pytestmark = pytest.mark.servers


def test_raw_clicks_past_the_retention_are_dropped_and_the_views_keep_their_totals(
    clickhouse: Client,
) -> None:
    now = datetime.now(UTC)
    insert_clicks(clickhouse, [click(at=now - timedelta(days=500)),
                               click(at=now - timedelta(days=10)), click(at=now)])
    totals_before = int(clickhouse.command("SELECT sum(clicks) FROM invite.clicks_totals_daily"))  # type: ignore[arg-type]
    try:
        assert apply_retention(clickhouse, 400) is True
        assert retention_days(clickhouse) == 400
        assert apply_retention(clickhouse, 400) is False  # already so: nothing rewritten
        kept = clickhouse.query("SELECT count() FROM invite.clicks").result_rows[0][0]
        assert kept == 2
        assert int(clickhouse.command("SELECT sum(clicks) FROM invite.clicks_totals_daily")) == (  # type: ignore[arg-type]
            totals_before
        )
        assert apply_retention(clickhouse, 5) is True
        assert clickhouse.query("SELECT count() FROM invite.clicks").result_rows[0][0] == 1
    finally:
        # The session's engine is shared: its clicks of 2025 must stay for the other tests.
        clickhouse.command("ALTER TABLE invite.clicks REMOVE TTL")
    assert retention_days(clickhouse) is None
