"""The servers under test, started as a user would: the baseline app and the real `invite edge`."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from edge.cli.embedded_redis import free_port
from edge.streams import CLICK_STREAM
from loadtests import baseline_app
from loadtests.processes import BenchError, Child, Children, wait_http_ok, wait_until

ROOT = Path(__file__).resolve().parents[1]
PARTNER_ID = "p-bench"
# A person's browser, so that the edge takes its full path: classify, attribute, sign a cookie.
BROWSER_HEADERS = {
    "User-Agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    ),
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-GB,en;q=0.9",
}
ADMIN_TIMEOUT_S = 10.0
_SAMPLE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)", re.MULTILINE)


def venv_script(name: str) -> Path:
    """A console script next to the running interpreter, i.e. in the project's venv."""
    script = Path(sys.executable).parent / name
    if not script.exists():
        raise BenchError(f"{script} does not exist: run `make install` first")
    return script


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus samples summed over their labels, by sample name."""
    totals: dict[str, float] = {}
    for name, value in _SAMPLE.findall(text):
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def check_redirect(url: str, *, attributed: bool) -> None:
    """One browser request: refuse to benchmark a server that does not answer a real redirect."""
    response = httpx.get(url, headers=BROWSER_HEADERS, follow_redirects=False, timeout=5.0)
    location = response.headers.get("location", "")
    problems = []
    if response.status_code != 302:
        problems.append(f"status {response.status_code}, not 302")
    if "set-cookie" not in response.headers:
        problems.append("no Set-Cookie")
    if attributed and "partnerId=" not in location:
        problems.append(f"Location {location!r} carries no partnerId")
    if problems:
        raise BenchError(f"GET {url} is not a working redirect: {'; '.join(problems)}")


@dataclass(frozen=True)
class EdgeCounters:
    redirects: int
    errors: int
    spooled: int
    replayed: int
    replay_skipped: int
    lost: int
    spool_depth: int
    redis_up: bool
    batches: int
    batched_clicks: int

    @classmethod
    def from_metrics(cls, text: str) -> EdgeCounters:
        sample = parse_metrics(text)

        def count(name: str) -> int:
            return int(sample.get(name, 0.0))

        return cls(
            redirects=count("invite_redirects_total"),
            errors=count("invite_redirect_errors_total"),
            spooled=count("invite_clicks_spooled_total"),
            replayed=count("invite_clicks_replayed_total"),
            replay_skipped=count("invite_clicks_replay_skipped_total"),
            lost=count("invite_clicks_lost_total"),
            spool_depth=count("invite_spool_depth"),
            redis_up=sample.get("invite_redis_up", 0.0) == 1.0,
            batches=count("invite_click_batch_size_count"),
            batched_clicks=count("invite_click_batch_size_sum"),
        )


class Server:
    """What the benchmark needs of a server: a redirect URL, its stream, its answered count."""

    name: str
    stream: str
    redirect_url: str
    child: Child | None = None

    def __init__(self, children: Children) -> None:
        self._children = children
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        raise NotImplementedError

    def answered(self) -> int:
        raise NotImplementedError

    def settled(self) -> bool:
        """Whether clicks may still be on their way to the stream by another path."""
        return True

    def stop(self) -> None:
        if self.child is not None:
            self._children.stop(self.child)
            self.child = None


class BaselineServer(Server):
    name = "baseline"
    stream = baseline_app.STREAM

    def __init__(self, children: Children, redis_url: str) -> None:
        super().__init__(children)
        self._redis_url = redis_url
        self.redirect_url = f"{self.base_url}/r/bench-code"

    def start(self) -> None:
        self.child = self._children.spawn(
            "baseline",
            [sys.executable, "-m", "loadtests.baseline_app", "--port", str(self.port),
             "--redis-url", self._redis_url],
            cwd=ROOT,
        )
        wait_http_ok(f"{self.base_url}/healthz", self.child)
        check_redirect(self.redirect_url, attributed=False)

    def answered(self) -> int:
        return int(httpx.get(f"{self.base_url}/answered", timeout=5.0).json()["answered"])


class EdgeServer(Server):
    """`invite edge --workers 1 --server S`, with a partner and a link made by the admin API."""

    stream = CLICK_STREAM

    def __init__(
        self, children: Children, redis_url: str, server: str, data_dir: Path,
        secret: str, admin_token: str, command: Sequence[str] | None = None,
    ) -> None:
        super().__init__(children)
        self.name = f"edge-{server}"
        # What runs `invite`: the venv's console script, or another launcher for experiments.
        self._command = list(command) if command else [str(venv_script("invite"))]
        self.server = server
        self.data_dir = data_dir
        self._redis_url = redis_url
        self._secret = secret
        self._admin_token = admin_token
        self.redirect_url = ""

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("INVITE_")}
        env.update(
            INVITE_REDIS_URL=self._redis_url,
            INVITE_DATA_DIR=str(self.data_dir),
            INVITE_SECRET=self._secret,
            INVITE_ADMIN_TOKEN=self._admin_token,
            INVITE_COOKIE_SECURE="0",
        )
        return env

    def start(self) -> None:
        self.child = self._children.spawn(
            self.name,
            [*self._command, "edge", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--server", self.server],
            env=self.environment(), cwd=ROOT,
        )
        wait_http_ok(f"{self.base_url}/healthz", self.child)
        code = self._create_link()
        self.redirect_url = f"{self.base_url}/r/{code}"
        check_redirect(self.redirect_url, attributed=True)

    def _create_link(self) -> str:
        admin = {"Authorization": f"Bearer {self._admin_token}"}
        with httpx.Client(base_url=self.base_url, headers=admin, timeout=ADMIN_TIMEOUT_S) as api:
            partner = api.put(f"/api/partners/{PARTNER_ID}",
                              json={"type": "ib", "name": "Benchmark IB"})
            if partner.status_code not in (200, 201):
                raise BenchError(f"PUT /api/partners/{PARTNER_ID}: {partner.status_code} "
                                 f"{partner.text}")
            link = api.post(f"/api/partners/{PARTNER_ID}/links", json={"campaign": "bench"})
            if link.status_code != 201:
                raise BenchError(f"POST /api/partners/{PARTNER_ID}/links: {link.status_code} "
                                 f"{link.text}")
            return str(link.json()["code"])

    def counters(self) -> EdgeCounters:
        return EdgeCounters.from_metrics(httpx.get(f"{self.base_url}/metrics", timeout=5.0).text)

    def answered(self) -> int:
        return self.counters().redirects

    def spool_files(self) -> int:
        spool = self.data_dir / "spool"
        return len(list(spool.glob("*.spool"))) if spool.is_dir() else 0

    def settled(self) -> bool:
        counters = self.counters()
        return counters.redis_up and counters.spool_depth == 0 and self.spool_files() == 0


def settle(server: Server, timeout_s: float = 60.0, interval_s: float = 0.25) -> int:
    """The server's answered count once it stops moving and nothing is left to replay."""
    seen: list[int] = []

    def still() -> bool:
        seen.append(server.answered())
        return len(seen) >= 2 and seen[-1] == seen[-2] and server.settled()

    wait_until(still, timeout_s, f"{server.name}'s answered count to settle", server.child,
               interval_s=interval_s)
    return seen[-1]
