"""Redirects while Redis is down: kill redis-server under load, restart it, check the replay.

Three wrk phases on one edge process: Redis up; Redis SIGKILLed shortly into the second phase
(clicks go to the fsync'd disk spool); Redis restarted from its AOF before the third (the edge
probes, finds it and replays the spool while still serving). Then every answered redirect must be
in the stream exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loadtests.processes import BenchRedis, Children
from loadtests.servers import EdgeServer, settle
from loadtests.wrk import Load, WrkResult

PHASE_UP_S = 5.0
PHASE_DOWN_S = 8.0
KILL_AFTER_S = 1.0  # into the down phase, so that the switch to the spool happens under load
PHASE_BACK_S = 6.0
REPLAY_TIMEOUT_S = 120.0
POLL_S = 0.25


@dataclass(frozen=True)
class Phase:
    name: str
    wrk: WrkResult


@dataclass
class OutageResult:
    phases: list[Phase] = field(default_factory=list)
    client_completed: int = 0
    answered: int = 0
    entries: int = 0
    spooled: int = 0
    replayed: int = 0
    replay_skipped: int = 0
    lost: int = 0
    errors: int = 0
    spool_seen_s: float | None = None  # kill → first click counted in the spool
    drained_s: float | None = None  # restart → Redis up again and no spool file left

    @property
    def missing(self) -> int:
        return max(0, self.answered - self.entries)

    @property
    def duplicates(self) -> int:
        return max(0, self.entries - self.answered)

    def print(self) -> None:
        print("\nRedis down (edge --server uvicorn; redis-server SIGKILLed, then restarted):")
        print(f"  {'phase':<44} {'redirects/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7}")
        for phase in self.phases:
            errors = phase.wrk.socket_errors + phase.wrk.non_2xx_3xx
            print(f"  {phase.name:<44} {phase.wrk.requests_per_s:>11,.0f} "
                  f"{phase.wrk.p50_ms:>7.2f} {phase.wrk.p99_ms:>7.2f} {errors:>7}")
        seen = f"{self.spool_seen_s:.2f} s" if self.spool_seen_s is not None else "not seen"
        drained = f"{self.drained_s:.2f} s" if self.drained_s is not None else "not seen"
        print(f"  spool: {self.spooled:,} clicks spooled (first seen {seen} after the kill), "
              f"{self.replayed:,} replayed, {self.replay_skipped:,} skipped as already in the "
              f"stream, {self.lost} lost; spool drained {drained} after the restart")
        verdict = "PASS" if self.missing == 0 else "FAIL"
        print(f"  clicks: answered {self.answered:,}, stream entries {self.entries:,}, "
              f"wrk {self.client_completed:,}; missing {self.missing}, extra {self.duplicates}  "
              f"{verdict}")


def run_outage(
    children: Children, redis: BenchRedis, load: Load, edge: EdgeServer, warmup_s: float,
    log: Callable[[str], None],
) -> OutageResult:
    result = OutageResult()
    log(f"redis-down: starting {edge.name} on {edge.base_url}")
    try:
        edge.start()
        warmup = load.run(children, edge.redirect_url, warmup_s)
        log(f"redis-down: phase 1, Redis up, {PHASE_UP_S:g} s")
        up = load.run(children, edge.redirect_url, PHASE_UP_S)
        result.phases.append(Phase("1. Redis up", up))

        log(f"redis-down: phase 2, {PHASE_DOWN_S:g} s, redis-server SIGKILLed after "
            f"{KILL_AFTER_S:g} s")
        wrk = load.start(children, edge.redirect_url, PHASE_DOWN_S)
        time.sleep(KILL_AFTER_S)
        redis.crash()
        killed_at = time.monotonic()
        while wrk.running and result.spool_seen_s is None:
            if edge.counters().spooled:
                result.spool_seen_s = time.monotonic() - killed_at
            time.sleep(POLL_S / 5)
        down = load.finish(children, wrk, PHASE_DOWN_S)
        result.phases.append(Phase(
            f"2. Redis killed {KILL_AFTER_S:g} s in, down for the rest", down))
        counters = edge.counters()
        log(f"redis-down: {counters.spooled:,} clicks spooled so far, "
            f"invite_redis_up={int(counters.redis_up)}")

        log(f"redis-down: phase 3, Redis restarted from its AOF, {PHASE_BACK_S:g} s")
        redis.start()
        restarted_at = time.monotonic()
        wrk = load.start(children, edge.redirect_url, PHASE_BACK_S)
        while wrk.running:
            if result.drained_s is None and edge.settled():
                result.drained_s = time.monotonic() - restarted_at
            time.sleep(POLL_S)
        back = load.finish(children, wrk, PHASE_BACK_S)
        result.phases.append(Phase("3. Redis restarted, spool replaying", back))

        result.answered = settle(edge, timeout_s=REPLAY_TIMEOUT_S)
        if result.drained_s is None:
            result.drained_s = time.monotonic() - restarted_at
        result.entries = redis.xlen(edge.stream)
        counters = edge.counters()
        result.spooled = counters.spooled
        result.replayed = counters.replayed
        result.replay_skipped = counters.replay_skipped
        result.lost = counters.lost
        result.errors = counters.errors
        result.client_completed = 1 + sum(
            run.requests for run in (warmup, up, down, back)
        )
    finally:
        edge.stop()
    log(f"redis-down: answered {result.answered:,}, stream {result.entries:,}, "
        f"missing {result.missing}")
    return result
