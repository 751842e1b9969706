"""The load generator for `POST /api/events`: client processes posting batches back to back.

Each client is a process of its own (spawned, so it shares nothing with the benchmark) holding one
keep-alive httpx connection. Before the common start time it builds a few batch bodies in which
every eventId starts with a placeholder; each request replaces the placeholder with a prefix of
its own (`{client}-{n}`), so every event ever sent is new and the ids of a request are known
without keeping its body. A client starts no request after the deadline and finishes the one in
flight, so that every answer the server sent is read: what was accepted is exactly the union of
the 200 answers. A client spends well under a millisecond of CPU on a request that costs the
server tens of milliseconds (its CPU time is reported beside the server's).
"""

from __future__ import annotations

import multiprocessing
import random
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import httpx
import orjson

from loadtests.events_batches import batch_body, batch_events

PLACEHOLDER = "~~"
TEMPLATES = 8
SPAWN_LEAD_S = 4.0  # from submitting the clients to the common start: spawn, import, build
REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Plan:
    url: str
    token: str
    name: str
    start_at: float  # time.time() of the first request
    stop_at: float  # no request starts after this
    batch_size: int
    seed: int


@dataclass(frozen=True)
class Sent:
    prefix: str
    started: float
    finished: float
    status: int
    accepted: int
    duplicates: int


@dataclass(frozen=True)
class ClientReport:
    sent: list[Sent]
    cpu_s: float  # the client's own CPU time from the start to its last answer
    late_s: float  # how long after the common start its first request went out


def run_client(plan: Plan) -> ClientReport:
    """One client process: build the templates, wait for the start, post until the deadline."""
    rng = random.Random(plan.seed)
    now_ms = int(time.time() * 1000)
    templates = [batch_body(batch_events(rng, PLACEHOLDER, plan.batch_size, now_ms))
                 for _ in range(TEMPLATES)]
    marker = f'"{PLACEHOLDER}-'.encode()
    headers = {"Authorization": f"Bearer {plan.token}", "Content-Type": "application/json"}
    sent: list[Sent] = []
    with httpx.Client(headers=headers, timeout=REQUEST_TIMEOUT_S) as http:
        http.get(plan.url.replace("/api/events", "/healthz"))  # the connection, opened early
        delay = plan.start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        late = max(0.0, time.time() - plan.start_at)
        cpu_before = time.process_time()
        while time.time() < plan.stop_at:
            prefix = f"{plan.name}-{len(sent)}"
            body = templates[len(sent) % TEMPLATES].replace(marker, f'"{prefix}-'.encode())
            started = time.time()
            response = http.post(plan.url, content=body)
            finished = time.time()
            accepted = duplicates = 0
            if response.status_code == 200:
                answer = orjson.loads(response.content)
                accepted, duplicates = int(answer["accepted"]), int(answer["duplicates"])
            sent.append(Sent(prefix, started, finished, response.status_code, accepted,
                             duplicates))
        cpu = time.process_time() - cpu_before
    return ClientReport(sent, cpu, late)


@dataclass(frozen=True)
class LoadResult:
    sent: list[Sent]  # every request of every client, warm-up included
    window: tuple[float, float]  # the measured seconds (time.time())
    batch_size: int
    client_cpu_s: float
    latest_start_s: float

    @property
    def measured(self) -> list[Sent]:
        """Requests answered inside the window: the rate and latencies are theirs."""
        low, high = self.window
        return [s for s in self.sent if low <= s.finished < high]

    @property
    def events_per_s(self) -> float:
        return sum(s.accepted for s in self.measured) / (self.window[1] - self.window[0])

    def latency_ms(self, share: float) -> float:
        times = sorted((s.finished - s.started) * 1000 for s in self.measured)
        if not times:
            return float("nan")
        return times[min(len(times) - 1, int(share * len(times)))]

    @property
    def median_ms(self) -> float:
        times = [(s.finished - s.started) * 1000 for s in self.measured]
        return statistics.median(times) if times else float("nan")

    @property
    def failed(self) -> list[Sent]:
        return [s for s in self.sent if s.status != 200]

    @property
    def accepted(self) -> int:
        return sum(s.accepted for s in self.sent)

    def accepted_ids(self) -> set[str]:
        """Every eventId a 200 answer accepted (each request's ids are its prefix + index)."""
        ids: set[str] = set()
        for s in self.sent:
            if s.status == 200 and s.accepted:
                ids.update(f"{s.prefix}-{index}" for index in range(self.batch_size))
        return ids


class Generator:
    """`clients` processes, started once and reused for every run (spawning costs seconds)."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self._pool = ProcessPoolExecutor(clients, mp_context=multiprocessing.get_context("spawn"))

    def start(self, url: str, token: str, label: str, warmup_s: float, duration_s: float,
              batch_size: int, seed: int) -> tuple[float, list[object]]:
        """Submit a run; returns its measured window's start and the clients' futures."""
        start_at = time.time() + SPAWN_LEAD_S
        stop_at = start_at + warmup_s + duration_s
        futures: list[object] = [
            self._pool.submit(run_client, Plan(url, token, f"{label}-c{index}", start_at, stop_at,
                                               batch_size, seed * 1000 + index))
            for index in range(self.clients)
        ]
        return start_at + warmup_s, futures

    @staticmethod
    def finish(futures: Sequence[object], window: tuple[float, float],
               batch_size: int) -> LoadResult:
        reports = [future.result() for future in futures]  # type: ignore[attr-defined]
        sent = sorted((s for report in reports for s in report.sent), key=lambda s: s.started)
        return LoadResult(sent, window, batch_size, sum(r.cpu_s for r in reports),
                          max(r.late_s for r in reports))

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
