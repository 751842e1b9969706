"""Real servers for the tests: a redis-server per session, the edge under uvicorn per test."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import hypothesis
import pytest
import redis
import uvicorn

from edge.app import create_app
from edge.cli.embedded_redis import find_redis_server, free_port
from edge.config import Settings
from tests.fake_ctrader import FakeCTrader

# The machine running the suite is shared: timing-based health checks would make it flaky.
hypothesis.settings.register_profile(
    "shared-machine", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("shared-machine")

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
HOOK_TOKEN = "hook-token-for-tests-0123456789"
SECRET = "test-secret-0123456789abcdef"
REGISTRATION_URL = "https://register.broker.test/signup"


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class RedisServer:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self.ping, what="redis-server to start")

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash would; the AOF keeps what was acknowledged."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    if not redis_server.ping():
        redis_server.start()  # a previous test killed it
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


def make_settings(data_dir: Path, redis_url: str, **overrides: str) -> Settings:
    env = {
        "INVITE_DATA_DIR": str(data_dir),
        "INVITE_REDIS_URL": redis_url,
        "INVITE_SECRET": SECRET,
        "INVITE_ADMIN_TOKEN": ADMIN_TOKEN,
        "INVITE_HOOK_TOKEN": HOOK_TOKEN,
        "INVITE_REGISTRATION_URL": REGISTRATION_URL,
        "INVITE_ALLOWED_DESTINATIONS": "register.broker.test,*.broker.test",
        "INVITE_ALLOWED_ORIGINS": "https://register.broker.test",
        "INVITE_COUNTRY_HEADER": "CF-IPCountry",
    }
    env.update(overrides)
    return Settings.from_env(env)


class EdgeServer:
    """The real app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        self.settings = settings
        self.port = port or free_port()
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EdgeServer:
        self.thread.start()
        wait_for(lambda: self.server.started, what="the edge to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "edge did not shut down"

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]

    def admin(self) -> httpx.Client:
        return self.client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


@pytest.fixture
def edge_factory(
    redis_client: redis.Redis, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Callable[..., EdgeServer]]:
    started: list[EdgeServer] = []

    def start(**overrides: str) -> EdgeServer:
        data_dir = tmp_path / f"edge{len(started)}"
        edge = EdgeServer(make_settings(data_dir, redis_server.url, **overrides)).start()
        started.append(edge)
        return edge

    yield start
    for edge in started:
        if edge.thread.is_alive():
            edge.stop()


@pytest.fixture
def edge(edge_factory: Callable[..., EdgeServer]) -> EdgeServer:
    return edge_factory()


def stream_events(client: redis.Redis) -> list[dict[str, object]]:
    import orjson

    return [orjson.loads(fields[b"e"]) for _, fields in client.xrange("invite:clicks")]


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpx would route loopback requests through a proxy from the environment.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")




class Tracebacks(logging.Handler):
    """Every log record carrying an exception, from our loggers and the server's."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            self.records.append(record)


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    """Fails the test if anything logged a traceback meanwhile."""
    handler = Tracebacks()
    loggers = [logging.getLogger(name) for name in ("invite", "uvicorn.error", "")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)
    assert [record.getMessage() for record in handler.records] == []


@pytest.fixture
def fake_ctrader() -> Iterator[FakeCTrader]:
    fake = FakeCTrader().start()
    yield fake
    fake.stop()


def ctrader_env(fake: FakeCTrader, **overrides: str) -> dict[str, str]:
    """Settings that point the edge at the fake cTrader, with test-sized backoff."""
    env = {
        "INVITE_CTRADER_URL": fake.url,
        "INVITE_CTRADER_TOKEN": fake.fixed_token,
        "INVITE_BROKER_CRM_NAME": fake.crm_name,
        "INVITE_CTRADER_TIMEOUT_MS": "3000",  # no timeouts on a loaded machine
        "INVITE_CTRADER_ATTEMPTS": "3",
        "INVITE_CTRADER_BACKOFF_MS": "10",
        "INVITE_CTRADER_BACKOFF_MAX_MS": "100",
        "INVITE_HOOK_BUDGET_MS": "2000",
    }
    env.update(overrides)
    return env
