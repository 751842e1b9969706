"""`invite events import FILE`: back-fills through the same checks and intake as the API."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import orjson
import pytest
import redis

from tests.conftest import RedisServer
from tests.edge.cli.test_cli import INVITE, _env

pytestmark = pytest.mark.servers

NOW = int(time.time() * 1000) - 60_000


def run(tmp_path: Path, redis_server: RedisServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INVITE, "events", "import", *args], env=_env(tmp_path, INVITE_REDIS_URL=redis_server.url),
        capture_output=True, text=True, timeout=120, check=False,
    )


def stream_ids(client: redis.Redis) -> list[str]:
    return [orjson.loads(f[b"e"])["event_id"] for _, f in client.xrange("invite:{events}")]


def test_a_csv_and_an_ndjson_file_are_imported_once_however_often_it_runs(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    csv_file = tmp_path / "history.csv"
    csv_file.write_text("eventId,type,ts,userId,ctidTraderAccountId,amount\n"
                        f"c1,deposit,{NOW},5,,100.50\nc2,account_opened,2026-01-01T00:00:00Z,5,77,\n")
    ndjson = tmp_path / "history.ndjson"
    ndjson.write_text("\n".join(orjson.dumps(e).decode() for e in [
        {"eventId": f"n{i}", "type": "trade", "ts": NOW - i, "userId": 5, "symbol": "EURUSD",
         "lots": "0.1", "commission": "1", "markup": "0"} for i in range(2500)
    ]) + "\n")
    first = run(tmp_path, redis_server, str(csv_file))
    second = run(tmp_path, redis_server, str(ndjson))
    again = run(tmp_path, redis_server, str(ndjson))
    assert first.returncode == 0, first.stderr
    assert orjson.loads(first.stdout) == {"accepted": 2, "duplicates": 0, "skipped": 0}
    assert orjson.loads(second.stdout) == {"accepted": 2500, "duplicates": 0, "skipped": 0}
    assert "lines/s" in second.stderr  # the progress bar, with its rate
    assert orjson.loads(again.stdout)["accepted"] == 0
    assert "resumed after line 2500" in again.stderr
    assert len(stream_ids(redis_client)) == 2502


def test_a_bad_line_stops_the_import_with_its_number_or_goes_to_the_skip_file(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    source = tmp_path / "bad.ndjson"
    source.write_text("\n".join([
        orjson.dumps({"eventId": "g1", "type": "kyc_approved", "ts": NOW, "userId": 1}).decode(),
        orjson.dumps({"eventId": "b1", "type": "deposit", "ts": NOW, "userId": "²",
                      "amount": "5"}).decode(),
        "{not json",
        orjson.dumps({"eventId": "g2", "type": "kyc_approved", "ts": NOW, "userId": 2}).decode(),
    ]) + "\n")
    stopped = run(tmp_path, redis_server, str(source))
    assert stopped.returncode == 1
    assert "line 2: userId" in stopped.stderr
    assert stream_ids(redis_client) == []
    skipped_to = tmp_path / "rejected.ndjson"
    finished = run(tmp_path, redis_server, str(source), "--skip-bad", str(skipped_to))
    assert finished.returncode == 0, finished.stderr
    assert orjson.loads(finished.stdout) == {"accepted": 2, "duplicates": 0, "skipped": 2}
    rejected = [orjson.loads(line) for line in skipped_to.read_text().splitlines()]
    assert [r["line"] for r in rejected] == [2, 3]
    assert stream_ids(redis_client) == ["g1", "g2"]


def test_a_file_of_another_kind_is_refused_with_exit_2(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    other = tmp_path / "events.xlsx"
    other.write_text("x")
    result = run(tmp_path, redis_server, str(other))
    assert result.returncode == 2
    assert ".csv or .ndjson" in result.stderr
