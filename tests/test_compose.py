"""docker-compose.yml starts against a fresh ClickHouse: a one-shot migrate the others wait for,
reachable batcher metrics, a stable consumer name, health checks; and `invite migrate` as the
migrate service runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from analytics.schema import MIGRATIONS

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_a_one_shot_migrate_runs_before_the_batcher_and_the_analytics_api() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["invite", "migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("batcher", "analytics"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_the_batcher_has_reachable_metrics_and_a_stable_consumer_name() -> None:
    batcher = compose()["services"]["batcher"]
    command = batcher["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - in a container
    assert batcher["environment"]["INVITE_BATCHER_CONSUMER"]


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = compose()["services"]
    for name in ("analytics", "redis", "clickhouse"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["analytics"]["healthcheck"]["test"])


def test_invite_migrate_as_the_migrate_service_runs_it(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVITE_")}
    env.update(INVITE_DATA_DIR=str(tmp_path), INVITE_SECRET="0123456789abcdef0123",
               INVITE_ADMIN_TOKEN="a" * 20, INVITE_HOOK_TOKEN="h" * 20,
               INVITE_CLICKHOUSE_URL=f"chdb://{tmp_path / 'clickhouse'}",
               INVITE_REDIS_URL="redis://redis:6379/0")
    runs = [subprocess.run([sys.executable, "-m", "edge", "migrate"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120, check=False)
            for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].stderr
    every = ", ".join(str(migration.version) for migration in MIGRATIONS)
    assert f"applied migrations {every};" in runs[0].stdout
    assert "nothing to do" in runs[1].stdout
    assert "raw clicks are kept 400 days" in runs[1].stdout
