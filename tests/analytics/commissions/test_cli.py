"""`invite commissions recompute --period`: in its own process on an engine nothing else holds,
or asking the running server that holds the embedded engine; bad months refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.analytics.commissions.conftest import Programme
from tests.analytics.commissions.test_api import setup_month
from tests.analytics.test_api import AnalyticsServer
from tests.conftest import ADMIN_TOKEN, SECRET, RedisServer

pytestmark = pytest.mark.servers


def invite(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", "commissions", "recompute", *args],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "INVITE_SECRET": SECRET, "INVITE_ADMIN_TOKEN": ADMIN_TOKEN, **env},
    )


def test_recompute_runs_on_an_engine_of_its_own(redis_server: RedisServer, tmp_path: Path,
                                                programme: Programme) -> None:
    programme.plan("std", rebates=[{"symbols": ["*"], "perLot": "1"}])
    done = invite("--period", "2026-11", INVITE_DATA_DIR=str(tmp_path),
                  INVITE_REDIS_URL=redis_server.url,
                  INVITE_CLICKHOUSE_URL=f"chdb://{tmp_path / 'clickhouse'}")
    assert done.returncode == 0, done.stderr
    assert "2026-11 computed again" in done.stdout


def test_recompute_asks_the_running_server_and_gives_the_same_lines(
    programme: Programme, ledger_api: AnalyticsServer, redis_server: RedisServer, tmp_path: Path,
) -> None:
    setup_month(programme, ledger_api)
    before = programme.lines()
    (tmp_path / "edge.url").write_text(f"http://127.0.0.1:{ledger_api.port}\n")
    engine = ledger_api.settings.analytics.clickhouse_url
    done = invite("--period", "2026-11", INVITE_DATA_DIR=str(tmp_path),
                  INVITE_REDIS_URL=redis_server.url, INVITE_CLICKHOUSE_URL=engine)
    assert done.returncode == 0, done.stderr
    assert "asking the running server" in done.stdout
    assert "computing 2026-11" in done.stderr  # the progress bar
    assert programme.lines() == before


def test_a_closed_or_malformed_month_is_refused(programme: Programme, ledger_api: AnalyticsServer,
                                                redis_server: RedisServer,
                                                tmp_path: Path) -> None:
    programme.close("2026-10")
    (tmp_path / "edge.url").write_text(f"http://127.0.0.1:{ledger_api.port}\n")
    env = {"INVITE_DATA_DIR": str(tmp_path), "INVITE_REDIS_URL": redis_server.url,
           "INVITE_CLICKHOUSE_URL": ledger_api.settings.analytics.clickhouse_url}
    closed = invite("--period", "2026-10", **env)
    malformed = invite("--period", "2026-1", **env)
    assert closed.returncode == 2 and "2026-10 is closed" in closed.stderr
    assert malformed.returncode == 2 and "YYYY-MM" in malformed.stderr
