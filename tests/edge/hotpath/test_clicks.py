"""Click capture: group commit, the spool when Redis is down or slow, replay exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
import redis

from tests.conftest import EdgeServer, RedisServer, stream_events, wait_for
from tests.edge.helpers import create_link, put_partner

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


def _click_id(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["clickId"][0]


def _metric(edge: EdgeServer, name: str) -> float:
    with edge.client() as client:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


class Traffic:
    """Client threads clicking until stopped; remembers every clickId that was answered."""

    def __init__(self, edge: EdgeServer, code: str, threads: int = 8) -> None:
        self.answered: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(edge, code), daemon=True)
            for _ in range(threads)
        ]

    def _run(self, edge: EdgeServer, code: str) -> None:
        with edge.client() as client:
            while not self._stop.is_set():
                try:
                    response = client.get(f"/r/{code}", headers={"User-Agent": CHROME})
                    click_id = _click_id(response)
                except (httpx.HTTPError, AssertionError, KeyError) as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                with self._lock:
                    self.answered.append(click_id)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def count(self) -> int:
        with self._lock:
            return len(self.answered)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def _assert_each_answered_click_once(client: redis.Redis, answered: list[str]) -> None:
    counts = Counter(str(event["click_id"]) for event in stream_events(client))
    missing = [click_id for click_id in answered if counts[click_id] == 0]
    doubled = [click_id for click_id, count in counts.items() if count > 1]
    assert not missing, f"{len(missing)} answered clicks missing from the stream"
    assert not doubled, f"{len(doubled)} clicks in the stream more than once"


@pytest.mark.servers
def test_concurrent_clicks_are_each_in_the_stream_once(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    put_partner(edge, "p-c")
    code = create_link(edge, "p-c")["code"]
    with Traffic(edge, code) as traffic:
        wait_for(lambda: traffic.count() >= 300, timeout=60, what="300 clicks")
    assert not traffic.failures
    _assert_each_answered_click_once(redis_client, traffic.answered)


@pytest.mark.servers
def test_redis_killed_mid_traffic_loses_and_doubles_nothing(
    edge: EdgeServer, redis_client: redis.Redis, redis_server: RedisServer
) -> None:
    put_partner(edge, "p-k")
    code = create_link(edge, "p-k")["code"]
    with Traffic(edge, code) as traffic:
        wait_for(lambda: traffic.count() >= 200, timeout=60, what="clicks before the kill")
        redis_server.kill()
        during = traffic.count()
        wait_for(lambda: traffic.count() >= during + 200, timeout=60, what="clicks while down")
        assert _metric(edge, "invite_redis_up") == 0.0
        redis_server.start()
        after = traffic.count()
        wait_for(lambda: traffic.count() >= after + 200, timeout=60, what="clicks after restart")
    assert not traffic.failures, traffic.failures[:3]
    wait_for(lambda: _metric(edge, "invite_spool_depth") == 0.0, timeout=30, what="replay")
    assert _metric(edge, "invite_clicks_spooled_total") > 0
    assert not list((edge.settings.spool_dir).glob("*.spool"))
    _assert_each_answered_click_once(redis_server.client(), traffic.answered)


@pytest.mark.servers
def test_slow_redis_sends_clicks_to_the_spool_and_they_arrive_later(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    put_partner(edge, "p-s")
    code = create_link(edge, "p-s")["code"]
    with edge.client() as client:
        _click_id(client.get(f"/r/{code}"))  # warm the link cache
        # Redis holds every client's commands for 1.5 s: far beyond the edge's write timeout.
        redis_client.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        answered = [_click_id(client.get(f"/r/{code}")) for _ in range(5)]
    wait_for(lambda: _metric(edge, "invite_spool_depth") == 0.0, timeout=30, what="replay")
    assert _metric(edge, "invite_clicks_spooled_total") >= 1
    _assert_each_answered_click_once(redis_client, answered)


@pytest.mark.servers
def test_spool_left_by_a_dead_process_is_replayed_once_on_start(
    edge_factory: Callable[..., EdgeServer], redis_client: redis.Redis, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "edge0" / "spool"
    spool_dir.mkdir(parents=True)
    events = [
        orjson.dumps({"click_id": f"0190-{n}", "ts": 1_750_000_000_000 + n, "kind": "person"})
        for n in range(10)
    ]
    # One of them had reached the stream before the process died.
    redis_client.xadd("invite:clicks", {"e": events[3]}, id="1750000000003-0")
    (spool_dir / "4242-1.spool").write_bytes(b"\n".join(events) + b"\n{\"torn")
    edge = edge_factory()
    wait_for(lambda: not list(spool_dir.glob("*.spool")), timeout=10, what="the replay")
    ids = Counter(str(event["click_id"]) for event in stream_events(redis_client))
    assert sorted(ids) == sorted(f"0190-{n}" for n in range(10))
    assert set(ids.values()) == {1}
    assert _metric(edge, "invite_clicks_replay_skipped_total") == 1.0


@pytest.mark.servers
def test_shutdown_flushes_every_answered_click(
    edge: EdgeServer, redis_client: redis.Redis
) -> None:
    put_partner(edge, "p-sd")
    code = create_link(edge, "p-sd")["code"]
    with Traffic(edge, code, threads=4) as traffic:
        wait_for(lambda: traffic.count() >= 100, timeout=60, what="clicks before shutdown")
        edge.stop()
    _assert_each_answered_click_once(redis_client, traffic.answered)


@pytest.mark.servers
def test_redis_and_disk_both_failing_still_redirects_and_counts_the_loss(
    edge_factory: Callable[..., EdgeServer], redis_server: RedisServer, tmp_path: Path
) -> None:
    edge = edge_factory()
    put_partner(edge, "p-lost")
    code = create_link(edge, "p-lost")["code"]
    with edge.client() as client:
        _click_id(client.get(f"/r/{code}"))  # cached now
        edge.settings.data_dir.mkdir(parents=True, exist_ok=True)
        edge.settings.spool_dir.write_text("a file where the spool directory should be")
        redis_server.kill()
        response = client.get(f"/r/{code}", headers={"User-Agent": CHROME})
    assert response.status_code == 302
    assert "partnerId=p-lost" in response.headers["location"]
    assert _metric(edge, "invite_clicks_lost_total") == 1.0
    redis_server.start()


@pytest.mark.servers
def test_uncached_link_while_redis_is_down_redirects_unattributed(
    edge: EdgeServer, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    put_partner(edge, "p-cold")
    code = create_link(edge, "p-cold")["code"]
    redis_server.kill()
    with edge.client() as client:
        response = client.get(f"/r/{code}", headers={"User-Agent": CHROME})
    assert response.status_code == 302
    assert response.headers["location"].startswith("https://register.broker.test/signup?clickId=")
    assert "set-cookie" not in response.headers
    redis_server.start()
    wait_for(lambda: _metric(edge, "invite_spool_depth") == 0.0, timeout=30, what="replay")
    (event,) = stream_events(redis_server.client())
    assert event["outcome"] == "unresolved"
    assert event["code"] == code
