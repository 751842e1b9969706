"""The processes a benchmark starts (redis-server, servers, wrk) and their certain cleanup.

Every child gets its own session, so a Ctrl-C reaches the benchmark only and the benchmark stops
each child in order; a server's workers share its process group and are killed with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from edge.cli.embedded_redis import find_redis_server, free_port

STOP_GRACE_S = 15.0
READY_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 30


class BenchError(Exception):
    pass


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return "\n".join(f"    {line}" for line in lines)


class Children:
    """Starts child processes and guarantees they are gone by the time `close()` returns."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._children: list[Child] = []

    def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = False,
    ) -> Child:
        log_path = None if capture else self._log_dir / f"{name}.log"
        options: dict[str, Any] = {
            "env": dict(env) if env is not None else None, "cwd": cwd,
            "stdin": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "start_new_session": True,
        }
        if log_path is None:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, **options)
        else:
            with open(log_path, "ab") as log:
                process = subprocess.Popen(argv, stdout=log, **options)
        child = Child(name, process, log_path)
        self._children.append(child)
        return child

    def stop(self, child: Child, sig: signal.Signals = signal.SIGINT,
             grace_s: float = STOP_GRACE_S) -> None:
        """Ask the child to stop, kill its process group after the grace period, reap it."""
        if child.running:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(sig)
            try:
                child.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                print(f"  ! {child.name} did not stop within {grace_s:.0f}s: killing it",
                      flush=True)
        # Workers a server forked are in its process group; none may outlive the benchmark.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=5)
        if child in self._children:
            self._children.remove(child)

    def close(self) -> None:
        for child in reversed(list(self._children)):
            self.stop(child, grace_s=5.0)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str,
               child: Child | None = None, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and not child.running:
            raise BenchError(
                f"{child.name} exited with {child.process.returncode} while waiting for "
                f"{what}; its log:\n{child.log_tail()}"
            )
        if condition():
            return
        time.sleep(interval_s)
    tail = f"; {child.name}'s log:\n{child.log_tail()}" if child is not None else ""
    raise BenchError(f"timed out after {timeout_s:.0f}s waiting for {what}{tail}")


def wait_http_ok(url: str, child: Child, timeout_s: float = READY_TIMEOUT_S) -> None:
    def answers() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout_s, f"{url} to answer 200", child)


class BenchRedis:
    """A redis-server of the benchmark's own: loopback, free port, AOF on `appendfsync everysec`."""

    def __init__(self, children: Children, directory: Path) -> None:
        self._children = children
        self.directory = directory
        self.binary = find_redis_server()  # ConfigError naming the fix when there is none
        self.port = free_port()
        self.child: Child | None = None
        self.client = redis.Redis(port=self.port, socket_timeout=5.0)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart on the same port and data, replaying its AOF) and wait for PONG."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "redis.conf"
        config.write_text("\n".join([
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.directory}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "daemonize no",
            f"logfile {self.directory / 'redis.log'}",
        ]) + "\n")
        self.child = self._children.spawn("redis-server", [self.binary, str(config)])
        wait_until(self.ping, READY_TIMEOUT_S, "redis-server to answer PING", self.child)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (redis.RedisError, OSError):
            return False

    def crash(self) -> None:
        """SIGKILL, as a crash: what reached the AOF file survives, nothing is flushed on exit."""
        if self.child is not None:
            self._children.stop(self.child, signal.SIGKILL, grace_s=5.0)
            self.child = None

    def stop(self) -> None:
        if self.child is not None:
            self._children.stop(self.child, signal.SIGTERM)
            self.child = None

    def flushall(self) -> None:
        self.client.flushall()

    def xlen(self, stream: str) -> int:
        return int(self.client.xlen(stream))

    def version(self) -> str:
        info = self.client.info("server")
        return str(info.get("redis_version", "?"))


@contextlib.contextmanager
def stopped_on_exit(children: Children) -> Iterator[Children]:
    """SIGTERM and SIGHUP end the benchmark like Ctrl-C does: through the cleanup below."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield children
    finally:
        # A second Ctrl-C during cleanup must not leave servers behind.
        original_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            children.close()
        finally:
            signal.signal(signal.SIGINT, original_int)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
