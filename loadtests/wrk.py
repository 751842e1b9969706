"""Running wrk and reading its report: requests, requests/s, latency percentiles, errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from loadtests.processes import Child, Children

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
_NON_2XX_3XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
# wrk stops on its own at the deadline; past this much more it is stuck.
WRK_GRACE_S = 30.0


class WrkError(Exception):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int  # responses wrk read completely before its deadline
    seconds: float
    requests_per_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx_3xx: int


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed: apt-get install wrk (or `make bench-edge`)")
    return found


def wrk_argv(
    url: str, *, duration_s: float, connections: int, threads: int, headers: dict[str, str]
) -> list[str]:
    argv = [wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    return [*argv, url]


def parse_wrk(report: str) -> WrkResult:
    """The figures of one wrk --latency report; WrkError naming what is missing otherwise."""
    percentiles = {int(p): float(v) * _UNITS_MS[unit] for p, v, unit in _PERCENTILE.findall(report)}
    total = _TOTAL.search(report)
    rate = _RATE.search(report)
    if total is None or rate is None or not {50, 99} <= percentiles.keys():
        raise WrkError(f"cannot read wrk's report (was --latency given?):\n{report}")
    errors = _SOCKET_ERRORS.search(report)
    non_2xx_3xx = _NON_2XX_3XX.search(report)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000,
        requests_per_s=float(rate.group(1)),
        p50_ms=percentiles[50],
        p75_ms=percentiles.get(75, 0.0),
        p90_ms=percentiles.get(90, 0.0),
        p99_ms=percentiles[99],
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        non_2xx_3xx=int(non_2xx_3xx.group(1)) if non_2xx_3xx else 0,
    )


@dataclass(frozen=True)
class Load:
    """How wrk loads a server: the same for every configuration, so that runs compare."""

    connections: int
    threads: int
    headers: dict[str, str]

    def start(self, children: Children, url: str, duration_s: float) -> Child:
        argv = wrk_argv(url, duration_s=duration_s, connections=self.connections,
                        threads=self.threads, headers=self.headers)
        return children.spawn("wrk", argv, capture=True)

    def finish(self, children: Children, child: Child, duration_s: float) -> WrkResult:
        try:
            output, _ = child.process.communicate(timeout=duration_s + WRK_GRACE_S)
        except subprocess.TimeoutExpired:
            raise WrkError(f"wrk ran past {duration_s + WRK_GRACE_S:.0f}s; stopped it") from None
        finally:
            children.stop(child, grace_s=2.0)
        report = output.decode(errors="replace")
        if child.process.returncode != 0:
            raise WrkError(f"wrk exited with {child.process.returncode}:\n{report}")
        return parse_wrk(report)

    def run(self, children: Children, url: str, duration_s: float) -> WrkResult:
        return self.finish(children, self.start(children, url, duration_s), duration_s)
