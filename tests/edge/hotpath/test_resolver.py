"""The link cache across a Redis restart: what is cached keeps being served, attributed."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis

from tests.conftest import EdgeServer, RedisServer, wait_for
from tests.edge.helpers import create_link, put_partner
from tests.edge.hotpath.test_clicks import CHROME

pytestmark = pytest.mark.servers


class Clicking:
    """Threads clicking a link; every answer's partnerId, campaign and cookie remembered."""

    def __init__(self, edge: EdgeServer, code: str, threads: int = 4) -> None:
        self.answers: list[tuple[str | None, str | None, bool]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(edge, code), daemon=True)
                         for _ in range(threads)]

    def _run(self, edge: EdgeServer, code: str) -> None:
        with edge.client() as client:
            while not self._stop.is_set():
                try:
                    response = client.get(f"/r/{code}", headers={"User-Agent": CHROME})
                except httpx.HTTPError:
                    continue
                query = parse_qs(urlsplit(response.headers.get("location", "")).query)
                answer = (query.get("partnerId", [None])[0], query.get("campaign", [None])[0],
                          "invite_ref=" in response.headers.get("set-cookie", ""))
                with self._lock:
                    self.answers.append(answer)
                time.sleep(0.005)

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def __enter__(self) -> Clicking:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def _wait_for_more(clicking: Clicking, more: int) -> None:
    target = clicking.count() + more
    wait_for(lambda: clicking.count() >= target, timeout=60, what=f"{more} more clicks")


@pytest.mark.parametrize("restarts", [3])
def test_a_redis_restart_never_costs_a_cached_link_its_attribution(
    edge: EdgeServer, redis_client: redis.Redis, redis_server: RedisServer, restarts: int
) -> None:
    put_partner(edge, "ib-restart", type="ib")
    code = create_link(edge, "ib-restart", campaign="spring")["code"]
    with edge.client() as client:
        client.get(f"/r/{code}", headers={"User-Agent": CHROME})  # the link is cached now
    with Clicking(edge, code) as clicking:
        for _ in range(restarts):
            _wait_for_more(clicking, 50)
            redis_server.kill()
            time.sleep(0.3)
            redis_server.start()  # the same port and AOF: the registry comes back
            # The edge's clients reconnect and its change feed resubscribes meanwhile.
            _wait_for_more(clicking, 200)
    lost = [answer for answer in clicking.answers if answer != ("ib-restart", "spring", True)]
    assert clicking.count() > 500
    assert lost == [], f"{len(lost)} of {clicking.count()} clicks lost their attribution"
