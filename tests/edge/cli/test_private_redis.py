"""`invite run`'s private Redis under supervision, and what `invite run` writes to its output."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from edge.cli.embedded_redis import EmbeddedRedis, find_redis_server, free_port
from tests.conftest import wait_for
from tests.edge.cli.test_cli import INVITE, _env, _invite, _up, stopped
from tests.edge.hotpath.test_clicks import CHROME

pytestmark = pytest.mark.servers

RFC3339_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _pid(data_dir: Path) -> int:
    return int((data_dir / "redis" / "redis.pid").read_text().strip())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _redis_servers_of(data_dir: Path) -> list[int]:
    """The running redis-server the private Redis's pid file names (it renames its process, so
    its command line does not show the config file)."""
    try:
        pid = _pid(data_dir)
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, ValueError):
        return []
    return [pid] if name.startswith("redis-server") and state != "Z" else []


def _metric(url: str, name: str) -> float | None:
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def _start(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [*INVITE, "run", "--port", str(port)],
        env=_env(tmp_path, PATH=os.environ.get("PATH", ""), **env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(url), timeout=60, what="invite run to listen")
    return process, url


def test_the_private_redis_is_restarted_when_it_dies_and_stopped_at_shutdown(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    process, url = _start(tmp_path)
    try:
        assert _invite(tmp_path, "partner", "add", "p-sup").returncode == 0
        link = orjson.loads(_invite(tmp_path, "link", "create", "p-sup").stdout)
        first = _pid(data_dir)
        os.kill(first, signal.SIGKILL)  # a crash
        wait_for(lambda: _alive_and_new(data_dir, first), timeout=30, what="a restarted Redis")
        wait_for(lambda: _metric(url, "invite_private_redis_restarts_total") == 1.0,
                 timeout=10, what="the restart in /metrics")
        response = httpx.get(link["url"], headers={"User-Agent": CHROME}, timeout=10)
        assert "partnerId=p-sup" in response.headers["location"]
        redis_url = (data_dir / "redis" / "url").read_text().strip()
        wait_for(lambda: _stream_length(redis_url) >= 1, timeout=30,
                 what="the click in the restarted Redis")
    finally:
        output = stopped(process)
    assert process.returncode == 0, output
    assert _redis_servers_of(data_dir) == []
    # One line when it went, one when it was back: not one per failed probe.
    assert output.count("the private redis-server exited") == 1, output
    assert output.count("the private redis-server is back") == 1, output


def test_a_private_redis_restarted_by_hand_serves_and_is_stopped_at_shutdown(
    tmp_path: Path,
) -> None:
    embedded = EmbeddedRedis(tmp_path / "var")
    url = embedded.start(supervise=False)
    config = tmp_path / "var" / "redis" / "redis.conf"
    try:
        assert embedded.process is not None
        embedded.process.send_signal(signal.SIGKILL)
        embedded.process.wait()
        assert not embedded.alive()
        by_hand = subprocess.Popen([find_redis_server(), str(config)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _stream_length(url) >= 0, timeout=30, what="the hand-started Redis")
        wait_for(embedded.alive, timeout=10, what="its pid file")
        assert _redis_servers_of(tmp_path / "var") == [by_hand.pid]
    finally:
        embedded.stop()
    assert by_hand.wait(timeout=15) == 0
    assert _redis_servers_of(tmp_path / "var") == []


def _alive_and_new(data_dir: Path, old_pid: int) -> bool:
    try:
        pid = _pid(data_dir)
    except (FileNotFoundError, ValueError):
        return False
    return pid != old_pid and _alive(pid)


def _stream_length(redis_url: str) -> int:
    try:
        with redis.Redis.from_url(redis_url, socket_timeout=1) as client:
            return int(client.xlen("invite:clicks"))
    except redis.RedisError:
        return -1


def test_with_json_logs_every_line_invite_run_writes_is_a_json_object(tmp_path: Path) -> None:
    process, url = _start(tmp_path, INVITE_LOG_FORMAT="json", INVITE_ACCESS_LOG="1")
    try:
        assert _invite(tmp_path, "partner", "add", "p-json").returncode == 0
        link = orjson.loads(_invite(tmp_path, "link", "create", "p-json").stdout)
        httpx.get(link["url"], headers={"User-Agent": CHROME}, timeout=10)
        httpx.get(f"{url}/healthz", timeout=10)
    finally:
        output = stopped(process)
    assert process.returncode == 0, output
    lines = [line for line in output.splitlines() if line.strip()]
    records = [orjson.loads(line) for line in lines]  # each line is one JSON object
    assert all(RFC3339_MS_UTC.fullmatch(record["ts"]) for record in records)
    messages = [record["message"] for record in records]
    assert any("invite-edge is starting" in message for message in messages)
    assert any(message.startswith("Uvicorn running") or "Application startup" in message
               for message in messages)
    access = [r["message"] for r in records if r["logger"] == "invite.access"]
    assert any(message.startswith(f"GET /r/{link['code']} 302 ") for message in access)
    assert all("127.0.0.0/24" in message for message in access)
    assert not any(" 127.0.0.1" in message for message in access)
