"""The edge on a real three-node Redis Cluster (`redis+cluster://`)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import redis
from redis.cluster import RedisCluster

from edge.cli.embedded_redis import find_redis_server, free_port
from tests.conftest import EdgeServer, ctrader_env, make_settings, wait_for
from tests.edge.helpers import create_link, put_partner
from tests.edge.sso.hooks_support import call_hook
from tests.fake_ctrader import FakeCTrader

pytestmark = pytest.mark.servers

SLOTS = 16384


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("cluster")
    ports = [_cluster_port() for _ in range(3)]
    processes = [
        subprocess.Popen(
            [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
             "--dir", str(directory), "--appendonly", "no", "--save", "",
             "--logfile", f"node-{port}.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            wait_for(lambda port=port: _answers(port), what="cluster node to start")
        nodes = [redis.Redis(port=port, socket_timeout=5) for port in ports]
        share = SLOTS // len(nodes)
        for index, node in enumerate(nodes):
            last = SLOTS if index == len(nodes) - 1 else (index + 1) * share
            node.execute_command("CLUSTER", "ADDSLOTS", *range(index * share, last))
        for port in ports[1:]:
            nodes[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        wait_for(
            lambda: all(b"cluster_state:ok" in node.execute_command("CLUSTER", "INFO")
                        for node in nodes),
            timeout=30, what="the cluster to form",
        )
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def _cluster_port() -> int:
    """A free port low enough for its cluster bus port (port + 10000) to exist."""
    while True:
        port = free_port()
        if port <= 55535:
            return port


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def test_edge_on_redis_cluster_records_clicks_and_follows_suspension(
    cluster_url: str, tmp_path: Path
) -> None:
    edge = EdgeServer(make_settings(tmp_path, cluster_url)).start()
    try:
        put_partner(edge, "ib-c", type="ib")
        put_partner(edge, "sub-c", parentPartnerId="ib-c")
        code = create_link(edge, "sub-c", campaign="cl")["code"]
        with edge.client() as client:
            response = client.get(f"/r/{code}", headers={"User-Agent": "Mozilla/5.0 Firefox/133.0"})
            assert response.status_code == 302
            click_id = parse_qs(urlsplit(response.headers["location"]).query)["clickId"][0]
            put_partner(edge, "sub-c", status="suspended")

            def uncredited() -> bool:
                location = client.get(f"/r/{code}").headers["location"]
                return "partnerId" not in parse_qs(urlsplit(location).query)

            wait_for(uncredited, timeout=1.0, what="the suspension through cluster pub/sub")
    finally:
        edge.stop()
    host, port = cluster_url.removeprefix("redis+cluster://").split(":")
    cluster = RedisCluster(host=host, port=int(port))
    events = [orjson.loads(fields[b"e"]) for _, fields in cluster.xrange("invite:clicks")]
    cluster.close()
    assert events[0]["click_id"] == click_id
    assert events[0]["ancestors"] == ["ib-c"]


def test_sso_hook_and_outbox_on_redis_cluster(
    cluster_url: str, tmp_path: Path, fake_ctrader: FakeCTrader
) -> None:
    edge = EdgeServer(make_settings(tmp_path, cluster_url, **ctrader_env(fake_ctrader))).start()
    try:
        put_partner(edge, "ib-h", type="ib")
        user_id = fake_ctrader.add_user()
        answer = call_hook(edge, "/hooks/sso/referral", {"userId": user_id, "partnerId": "ib-h"})
        assert answer.json()["assignment"] == "done", answer.text
        fake_ctrader.down = True
        queued_user = fake_ctrader.add_user()
        queued = call_hook(edge, "/hooks/sso/referral", {"userId": queued_user,
                                                         "partnerId": "ib-h"})
        assert queued.json()["assignment"] == "queued"
        fake_ctrader.down = False
        wait_for(lambda: fake_ctrader.referrals.get(queued_user) == "ib-h",
                 what="the worker to send the queued assignment on the cluster")
        cluster = RedisCluster.from_url(cluster_url.replace("+cluster", ""))
        events = [orjson.loads(fields[b"e"]) for _, fields in cluster.xrange("invite:conversions")]
        assert [event["user_id"] for event in events] == [str(user_id), str(queued_user)]
        cluster.close()
    finally:
        edge.stop()
