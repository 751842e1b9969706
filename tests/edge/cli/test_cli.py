"""The `invite` command as an operator runs it: real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from edge.cli.embedded_redis import free_port
from edge.cli.launch import SHUTDOWN_WATCHDOG_S
from edge.registry.keys import plan_key
from tests.conftest import SECRET, RedisServer, ctrader_env, stream_events, wait_for
from tests.edge.hotpath.test_clicks import CHROME, Traffic, _assert_each_answered_click_once
from tests.fake_ctrader import FakeCTrader

INVITE = [sys.executable, "-m", "edge"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("INVITE_")}
    env.update({
        "INVITE_DATA_DIR": str(tmp_path / "var"),
        "INVITE_SECRET": SECRET,
        "INVITE_COOKIE_SECURE": "0",
        "NO_PROXY": "127.0.0.1,localhost",
    })
    env.update(extra)
    return env


def _invite(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INVITE, *args], env=_env(tmp_path, **env), capture_output=True, text=True, timeout=60,
        check=False,
    )


def _ctrader(tmp_path: Path, fake: FakeCTrader, *args: str) -> subprocess.CompletedProcess[str]:
    return _invite(tmp_path, "ctrader", "partner", *args, **ctrader_env(fake))


def test_ctrader_partner_set_get_delete(tmp_path: Path, fake_ctrader: FakeCTrader) -> None:
    user_id = fake_ctrader.add_user()
    user = ["--user-id", str(user_id)]
    assigned = _ctrader(tmp_path, fake_ctrader, "set", *user, "--partner-id", "ib-7")
    assert assigned.returncode == 0, assigned.stderr
    assert orjson.loads(assigned.stdout) == {"userId": user_id, "partnerId": "ib-7"}
    shown = _ctrader(tmp_path, fake_ctrader, "get", *user)
    assert orjson.loads(shown.stdout)["partnerId"] == "ib-7"
    assert _ctrader(tmp_path, fake_ctrader, "delete", *user).returncode == 0
    assert user_id not in fake_ctrader.referrals


@pytest.mark.parametrize("args", [
    ["set", "--user-id", "5"], ["get"], ["get", "--user-id", "x"],
    ["get", "--user-id", "5", "--ctid-trader-account-id", "6"],
    ["set", "--user-id", "5", "--partner-id", "bad id"],
], ids=["no-partner", "no-user", "not-a-number", "two-users", "bad-partner"])
def test_ctrader_partner_bad_arguments_exit_2(
    tmp_path: Path, fake_ctrader: FakeCTrader, args: list[str]
) -> None:
    result = _ctrader(tmp_path, fake_ctrader, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_ctrader_refusal_exits_1_saying_what_to_do(
    tmp_path: Path, fake_ctrader: FakeCTrader
) -> None:
    result = _ctrader(tmp_path, fake_ctrader, "set", "--user-id", "999", "--partner-id", "p")
    assert result.returncode == 1
    assert "INVALID_REQUEST" in result.stderr
    assert "check the user id" in result.stderr
    assert fake_ctrader.fixed_token not in result.stderr


def test_ctrader_without_settings_names_them(tmp_path: Path) -> None:
    result = _invite(tmp_path, "ctrader", "partner", "get", "--user-id", "5")
    assert result.returncode == 1
    assert "INVITE_CTRADER_URL" in result.stderr


def test_ctrader_dead_letters_lists_what_was_given_up(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    letter = {"kind": "assignment", "key": "assign:u:1:p", "error": {"code": "ctrader_rejected"}}
    redis_client.xadd("invite:{outbox}:dead", {"e": orjson.dumps(letter)})
    result = _invite(tmp_path, "ctrader", "dead-letters", INVITE_REDIS_URL=redis_server.url)
    assert result.returncode == 0, result.stderr
    [shown] = orjson.loads(result.stdout)["deadLetters"]
    assert shown["key"] == "assign:u:1:p"


def test_embedded_analytics_without_redis_says_what_to_set(tmp_path: Path) -> None:
    result = _invite(tmp_path, "analytics")
    assert result.returncode == 2
    assert "INVITE_REDIS_URL" in result.stderr


@pytest.mark.parametrize(
    "args", [["bogus"], ["edge", "--port", "eighty"], ["partner", "add"], ["link"]],
    ids=["unknown-command", "bad-port", "missing-partner-id", "missing-action"],
)
def test_bad_arguments_exit_2_with_one_clear_line(tmp_path: Path, args: list[str]) -> None:
    result = _invite(tmp_path, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("invite: ")


def test_every_command_has_help(tmp_path: Path) -> None:
    for args in (["--help"], ["run", "--help"], ["edge", "--help"], ["partner", "add", "--help"],
                 ["link", "create", "--help"], ["ctrader", "partner", "set", "--help"],
                 ["ctrader", "dead-letters", "--help"]):
        assert _invite(tmp_path, *args).returncode == 0


def test_registry_commands_without_redis_explain_what_to_do(tmp_path: Path) -> None:
    result = _invite(tmp_path, "partner", "add", "p-1")
    assert result.returncode == 2
    assert "invite run" in result.stderr


def test_bad_setting_names_the_variable(tmp_path: Path) -> None:
    result = _invite(tmp_path, "partner", "add", "p-1", INVITE_ATTRIBUTION_MODEL="middle")
    assert result.returncode == 2
    assert "INVITE_ATTRIBUTION_MODEL" in result.stderr


@pytest.mark.servers
def test_partner_and_link_commands_write_the_registry(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    env = {"INVITE_REDIS_URL": redis_server.url}
    assert _invite(tmp_path, "partner", "add", "ib-1", "--type", "ib", **env).returncode == 0
    sub = _invite(tmp_path, "partner", "add", "sub-1", "--parent", "ib-1", **env)
    assert orjson.loads(sub.stdout)["ancestors"] == ["ib-1"]
    link = _invite(tmp_path, "link", "create", "sub-1", "--campaign", "tg", "--base-url",
                   "https://go.broker.test", **env)
    assert link.returncode == 0, link.stderr
    created = orjson.loads(link.stdout)
    assert created["url"] == f"https://go.broker.test/r/{created['code']}"
    refused = _invite(tmp_path, "link", "create", "sub-1", "--destination", "https://evil.test/",
                      **env)
    assert refused.returncode == 1
    assert "evil.test" in refused.stderr


@pytest.mark.servers
def test_partner_add_takes_a_plan_that_exists(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    env = {"INVITE_REDIS_URL": redis_server.url}
    missing = _invite(tmp_path, "partner", "add", "ib-1", "--plan", "std", **env)
    assert missing.returncode == 1 and "PUT /api/plans/std" in missing.stderr
    redis_client.hset(plan_key("std"), "1", "{}")
    added = _invite(tmp_path, "partner", "add", "ib-1", "--plan", "std", **env)
    assert added.returncode == 0, added.stderr
    assert orjson.loads(added.stdout)["planId"] == "std"


@pytest.fixture
def edge_process(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    process = subprocess.Popen(
        [*INVITE, "edge", "--port", str(port)],
        env=_env(tmp_path, INVITE_REDIS_URL=redis_server.url, INVITE_ADMIN_TOKEN="a" * 24),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(url), timeout=30, what="invite edge to listen")
    yield process, url
    if process.poll() is None:
        process.kill()
        process.wait()


def stopped(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM to an `invite run`, and its whole output once it exited. Its watchdog ends a hung
    shutdown after SHUTDOWN_WATCHDOG_S (status 1, what was still running in the output); past
    that, the test fails with the output so far instead of hanging."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=SHUTDOWN_WATCHDOG_S + 30)[0].decode()
    except subprocess.TimeoutExpired:
        process.kill()
        tail = process.communicate(timeout=30)[0].decode()[-6000:]
        raise AssertionError(f"invite run did not stop after SIGTERM:\n{tail}") from None


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.servers
def test_sigterm_drains_and_every_answered_click_is_in_the_stream(
    edge_process: tuple[subprocess.Popen[bytes], str], redis_client: redis.Redis
) -> None:
    process, url = edge_process
    admin = {"Authorization": "Bearer " + "a" * 24}
    httpx.put(f"{url}/api/partners/p-term", json={}, headers=admin).raise_for_status()
    code = httpx.post(f"{url}/api/partners/p-term/links", json={}, headers=admin).json()["code"]

    class _Edge:  # what Traffic needs of an edge
        def client(self) -> httpx.Client:
            return httpx.Client(base_url=url, timeout=10)

    with Traffic(_Edge(), code, threads=4) as traffic:  # type: ignore[arg-type]
        wait_for(lambda: traffic.count() >= 200, timeout=60, what="clicks before SIGTERM")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert traffic.count() >= 200
    _assert_each_answered_click_once(redis_client, traffic.answered)


@pytest.mark.servers
def test_invite_run_starts_a_private_redis_and_stops_it(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, PATH=os.environ.get("PATH", ""))
    process = subprocess.Popen(
        [*INVITE, "run", "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(url), timeout=30, what="invite run to listen")
        data_dir = tmp_path / "var"
        redis_url = (data_dir / "redis" / "url").read_text().strip()
        admin_token = (data_dir / "admin_token").read_text().strip()
        assert _invite(tmp_path, "partner", "add", "p-run").returncode == 0
        link = orjson.loads(_invite(tmp_path, "link", "create", "p-run").stdout)
        assert link["url"].startswith(url)
        response = httpx.get(link["url"], headers={"User-Agent": CHROME})
        assert response.status_code == 302
        assert response.headers["location"].startswith(f"{url}/demo/register?partnerId=p-run")
        assert "invite_ref=" in response.headers["set-cookie"]
        with redis.Redis.from_url(redis_url) as client:
            wait_for(lambda: len(stream_events(client)) == 1, what="the click in the stream")
            assert client.config_get("appendonly")["appendonly"] == "yes"

        def in_analytics() -> bool:
            summary = httpx.get(f"{url}/api/analytics/summary?partnerId=p-run",
                                headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
            return summary.status_code == 200 and summary.json()["humanClicks"] == 1

        # The same process runs the batcher into the embedded engine and answers analytics.
        wait_for(in_analytics, timeout=30, what="the click in the analytics summary")
    finally:
        output = stopped(process)
    assert process.returncode == 0, output
    # Secrets stay out of the output that is no terminal: the Redis password is masked and the
    # admin token is named by its file.
    password = redis_url.split(":")[2].split("@")[0]
    assert redis_url.replace(password, "***") in output
    assert password not in output
    assert admin_token not in output
    assert str(data_dir / "admin_token") in output
    assert "invite link create" in output or "/links" in output
    assert not (tmp_path / "var" / "redis" / "url").exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()


def test_migrate_creates_the_schema_once(tmp_path: Path) -> None:
    first = _invite(tmp_path, "migrate")
    again = _invite(tmp_path, "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied migrations 1" in first.stdout
    assert again.returncode == 0
    assert "nothing to do" in again.stdout


@pytest.mark.servers
def test_batcher_moves_clicks_into_clickhouse_and_stops_on_sigterm(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    events = [
        {"click_id": f"01a2{n:04x}-0000-7000-8000-000000000000", "ts": 1_795_500_000_000 + n,
         "code": "c", "kind": "person", "outcome": "credited", "partner_id": "p-b",
         "ancestors": ["ib"], "user_agent": CHROME}
        for n in range(20)
    ]
    for event in events:
        redis_client.xadd("invite:clicks", {"e": orjson.dumps(event)})
    process = subprocess.Popen(
        [*INVITE, "batcher", "--port", "0"],
        env=_env(tmp_path, INVITE_REDIS_URL=redis_server.url, INVITE_BATCHER_FLUSH_MS="100"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )

    def acknowledged() -> bool:
        groups = redis_client.xinfo_groups("invite:clicks")
        return bool(groups) and groups[0]["pending"] == 0 and groups[0]["lag"] == 0

    try:
        wait_for(acknowledged, timeout=60, what="the batcher to acknowledge every click")
    finally:
        output = stopped(process)
    assert process.returncode == 0, output
    assert "20 clicks inserted" in output
    # chDB admits one data dir per process (and the suite may hold another): ask in a new one.
    query = subprocess.run(
        [sys.executable, "-c",
         "import clickhouse_connect, sys; "
         "c = clickhouse_connect.get_client(dsn=sys.argv[1]); "
         "print(c.query('SELECT count(), uniqExact(click_id) FROM invite.clicks').result_rows)",
         f"chdb://{tmp_path / 'var' / 'clickhouse'}"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert query.stdout.strip() == "[(20, 20)]"


@pytest.mark.servers
def test_invite_analytics_runs_the_batcher_and_the_api_in_one_process(
    tmp_path: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    port = free_port()
    event = {"click_id": "01a20000-0000-7000-8000-000000000001", "ts": 1_795_500_000_000,
             "code": "c", "kind": "person", "outcome": "credited", "partner_id": "p-an",
             "ancestors": [], "user_agent": CHROME}
    redis_client.xadd("invite:clicks", {"e": orjson.dumps(event)})
    process = subprocess.Popen(
        [*INVITE, "analytics", "--port", str(port)],
        env=_env(tmp_path, INVITE_REDIS_URL=redis_server.url, INVITE_ADMIN_TOKEN="b" * 24),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def counted() -> bool:
        try:
            response = httpx.get(
                f"{url}/api/analytics/summary?partnerId=p-an&from=2026-11-01&to=2026-12-01",
                headers={"Authorization": "Bearer " + "b" * 24}, timeout=5,
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.json()["clicks"] == 1

    try:
        wait_for(counted, timeout=60, what="the click in the analytics of `invite analytics`")
        assert httpx.get(f"{url}/readyz", timeout=5).json()["clickhouse"] == "ok"
        assert httpx.get(f"{url}/dashboard", timeout=5).status_code == 200
    finally:
        output = stopped(process)
    assert process.returncode == 0, output
