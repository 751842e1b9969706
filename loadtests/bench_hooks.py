"""`make bench-hooks`: SSO hook throughput against a fake cTrader answering in 50 ms, and the outbox
draining after a cTrader outage.

One run starts its own redis-server, the fake cTrader (`python -m tests.fake_ctrader`, a process
of its own) and `invite edge --workers N` (`--workers`, default 1). Phases:

1. baseline: the load generator calls the fake's `PUT /cid/oauth2/ctid/referral` directly, with
   the same concurrency: the floor any hook sits on (50 ms per call);
2. hooks: `POST /hooks/sso/referral` with a new user each, same concurrency (saturated):
   assignments/s, and how many answered `done` within the budget; then hooks arriving at a steady
   `--steady-rate`/s: hook latency below saturation;
3. outage: the fake answers 503 for `--outage-s` while hooks keep arriving at `--outage-rate`/s
   (answered `queued`); then it comes back and the outbox drains: time to the first delivery
   (the gate's backed-off probe) and assignments/s while draining.

Exit status: 0 when it ran, 1 when an assignment went missing or a run failed, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from edge.cli.embedded_redis import free_port
from edge.sso.jobs import STREAM
from loadtests.processes import (
    BenchError,
    BenchRedis,
    Children,
    stopped_on_exit,
    wait_http_ok,
    wait_until,
)
from loadtests.servers import ROOT, venv_script
from tests.fake_ctrader import FakeCTrader

CRM = FakeCTrader.crm_name
FAKE_TOKEN = FakeCTrader.fixed_token
PARTNER_ID = "ib-bench"


@dataclass(frozen=True)
class LoadResult:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    answers: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def line(self) -> str:
        return (f"{self.name:<34} {self.rate:8.0f}/s  p50 {self.percentile(0.5):6.1f} ms  "
                f"p99 {self.percentile(0.99):6.1f} ms  n={self.requests}  {self.answers}")


class Connection:
    """One keep-alive HTTP/1.1 connection. httpx's pool costs more CPU than the servers measured
    once dozens of connections are busy (90 calls/s at 64 connections on a 50 ms server)."""

    def __init__(self, url: str) -> None:
        parts = httpx.URL(url)
        self._host, self._port = parts.host, parts.port or 80
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, method: str, target: str, body: bytes,
                   headers: dict[str, str]) -> tuple[int, bytes]:
        reused = self._streams is not None
        try:
            return await self._exchange(method, target, body, headers)
        except (ConnectionError, asyncio.IncompleteReadError, IndexError):
            if not reused:
                raise
            # The server closed an idle keep-alive connection (uvicorn: after 5 s): once more.
            self.close()
            return await self._exchange(method, target, body, headers)

    async def _exchange(self, method: str, target: str, body: bytes,
                        headers: dict[str, str]) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{head}\r\n"
            .encode() + body
        )
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


Request = Callable[[Connection, int], Awaitable[str]]


async def closed_loop(
    name: str, url: str, concurrency: int, duration_s: float, request: Request, first_user: int,
) -> LoadResult:
    """`concurrency` callers, each sending its next request as soon as the last one answered."""
    latencies: list[float] = []
    answers: dict[str, int] = {}
    counter = iter(range(first_user, first_user + 10_000_000))
    deadline = time.perf_counter() + duration_s

    async def caller() -> None:
        connection = Connection(url)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                answer = await request(connection, next(counter))
                latencies.append((time.perf_counter() - started) * 1000)
                answers[answer] = answers.get(answer, 0) + 1
        finally:
            connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return LoadResult(name, len(latencies), time.perf_counter() - began, latencies, answers)


async def open_loop(name: str, url: str, rate: float, duration_s: float, request: Request,
                    first_user: int) -> LoadResult:
    """A fixed arrival rate, whatever the answers take: latency below saturation."""
    answers: dict[str, int] = {}
    latencies: list[float] = []
    idle: list[Connection] = []
    tasks = []
    began = time.perf_counter()

    async def one(user: int) -> None:
        connection = idle.pop() if idle else Connection(url)
        started = time.perf_counter()
        answer = await request(connection, user)
        latencies.append((time.perf_counter() - started) * 1000)
        idle.append(connection)
        answers[answer] = answers.get(answer, 0) + 1

    for index in range(int(rate * duration_s)):
        delay = began + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(first_user + index)))
    await asyncio.gather(*tasks)
    for connection in idle:
        connection.close()
    return LoadResult(name, len(latencies), time.perf_counter() - began, latencies, answers)


class Bench:
    def __init__(self, children: Children, workdir: Path, args: argparse.Namespace) -> None:
        self.children = children
        self.args = args
        self.redis = BenchRedis(children, workdir / "redis")
        self.fake_port = free_port()
        self.edge_port = free_port()
        self.hook_token = secrets.token_urlsafe(24)
        self.admin_token = secrets.token_urlsafe(24)
        self.workdir = workdir

    @property
    def fake_url(self) -> str:
        return f"http://127.0.0.1:{self.fake_port}"

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    def start(self) -> None:
        self.redis.start()
        fake = self.children.spawn("fake-ctrader", [
            sys.executable, "-m", "tests.fake_ctrader", "--port", str(self.fake_port),
            "--delay-ms", str(self.args.delay_ms), "--accept-any-user",
        ], cwd=ROOT)
        wait_http_ok(f"{self.fake_url}/_fake/stats", fake)
        env = {key: value for key, value in os.environ.items() if not key.startswith("INVITE_")}
        env.update(
            INVITE_REDIS_URL=self.redis.url, INVITE_DATA_DIR=str(self.workdir / "edge"),
            INVITE_SECRET=secrets.token_urlsafe(32), INVITE_ADMIN_TOKEN=self.admin_token,
            INVITE_HOOK_TOKEN=self.hook_token, INVITE_CTRADER_URL=self.fake_url,
            INVITE_CTRADER_TOKEN=FAKE_TOKEN, INVITE_BROKER_CRM_NAME=CRM,
            INVITE_LOG_FORMAT="json",
        )
        edge = self.children.spawn("edge", [
            str(venv_script("invite")), "edge", "--host", "127.0.0.1",
            "--port", str(self.edge_port), "--workers", str(self.args.workers),
        ], env=env, cwd=ROOT)
        wait_http_ok(f"{self.edge_url}/healthz", edge)
        response = httpx.put(f"{self.edge_url}/api/partners/{PARTNER_ID}", json={"type": "ib"},
                             headers={"Authorization": f"Bearer {self.admin_token}"})
        if response.status_code not in (200, 201):
            raise BenchError(f"PUT partner: {response.status_code} {response.text}")

    def fake_state(self, **state: object) -> dict[str, object]:
        if state:
            answer = httpx.post(f"{self.fake_url}/_fake/state", json=state)
        else:
            answer = httpx.get(f"{self.fake_url}/_fake/stats")
        result: dict[str, object] = answer.json()
        return result

    async def direct(self, connection: Connection, user: int) -> str:
        status, _ = await connection.send(
            "PUT", f"/cid/oauth2/ctid/referral?token={FAKE_TOKEN}",
            orjson.dumps({"brokerCrmName": CRM, "partnerId": PARTNER_ID, "userId": user}), {},
        )
        return str(status)

    async def hook(self, connection: Connection, user: int) -> str:
        status, body = await connection.send(
            "POST", "/hooks/sso/referral",
            orjson.dumps({"userId": user, "partnerId": PARTNER_ID}),
            {"Authorization": f"Bearer {self.hook_token}"},
        )
        if status != 200:
            return str(status)
        return str(orjson.loads(body)["assignment"])


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-hooks-") as tmp, \
            stopped_on_exit(Children(Path(tmp))) as children:
        bench = Bench(children, Path(tmp), args)
        try:
            bench.start()
            print(f"fake cTrader answering in {args.delay_ms:g} ms; {args.concurrency} callers; "
                  f"{args.duration_s:g} s per phase; {args.workers} edge worker(s); "
                  f"redis {bench.redis.version()}; {os.cpu_count()} cores", flush=True)
            asyncio.run(closed_loop("warm-up", bench.edge_url, args.concurrency, 2, bench.hook, 1))
            baseline = asyncio.run(closed_loop(
                "baseline: PUT on the fake directly", bench.fake_url, args.concurrency,
                args.duration_s, bench.direct, 10_000_000))
            print(baseline.line(), flush=True)
            assigned_before = int(bench.fake_state()["assigned"])  # type: ignore[call-overload]
            hooks = asyncio.run(closed_loop(
                "hooks: POST /hooks/sso/referral", bench.edge_url, args.concurrency,
                args.duration_s, bench.hook, 20_000_000))
            print(hooks.line(), flush=True)
            steady = asyncio.run(open_loop(
                f"hooks at a steady {args.steady_rate:g}/s", bench.edge_url, args.steady_rate,
                args.duration_s, bench.hook, 25_000_000))
            print(steady.line(), flush=True)
            wait_until(lambda: bench.redis.xlen(STREAM) == 0, 60, "the outbox to empty")
            delivered = int(bench.fake_state()["assigned"]) - assigned_before  # type: ignore[call-overload]
            answered = hooks.requests + steady.requests
            print(f"  hooks answered: {answered}; assignments that reached the fake: "
                  f"{delivered}; saturated hooks/baseline: {hooks.rate / baseline.rate:.2f}",
                  flush=True)
            missing = answered - delivered
            missing += outage(bench, args)
        except BenchError as exc:
            print(f"bench-hooks failed: {exc}", file=sys.stderr)
            return 1
    if missing:
        print(f"MISSING: {missing} assignments never reached cTrader", file=sys.stderr)
        return 1
    return 0


def outage(bench: Bench, args: argparse.Namespace) -> int:
    assigned_before = int(bench.fake_state()["assigned"])  # type: ignore[call-overload]
    bench.fake_state(down=True)
    print(f"outage: cTrader answers 503 for {args.outage_s:g} s while "
          f"{args.outage_rate:g} hooks/s arrive", flush=True)
    answers = asyncio.run(open_loop(
        "hooks during the outage", bench.edge_url, args.outage_rate, args.outage_s, bench.hook,
        30_000_000,
    )).answers
    queued = bench.redis.xlen(STREAM)
    print(f"  answers during the outage: {answers}; in the outbox: {queued}", flush=True)
    bench.fake_state(down=False)
    back = time.perf_counter()
    target = assigned_before + sum(answers.values())

    def assigned() -> int:
        return int(bench.fake_state()["assigned"])  # type: ignore[call-overload]

    wait_until(lambda: assigned() > assigned_before, 120, "the first delivery after the outage")
    first = time.perf_counter()
    first_count = assigned()
    wait_until(lambda: assigned() >= target, 300, "the outbox to drain", interval_s=0.02)
    drained = time.perf_counter()
    drain_rate = (target - first_count) / max(drained - first, 1e-9)
    print(f"  cTrader back: first delivery after {first - back:.1f} s (the gate's probe), "
          f"then {target - assigned_before} assignments drained in {drained - back:.1f} s: "
          f"{drain_rate:.0f} assignments/s while draining", flush=True)
    wait_until(lambda: bench.redis.xlen(STREAM) == 0, 60, "the outbox stream to empty")
    return target - assigned()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--outage-rate", type=float, default=50.0)
    parser.add_argument("--steady-rate", type=float, default=100.0,
                        help="hooks/s of the latency phase (below saturation)")
    parser.add_argument("--workers", type=int, default=1, help="edge worker processes")
    try:
        sys.exit(run(parser.parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
