"""What the hook tests share: calling hooks, reading conversions, a partner's webhook receiver."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import redis

from edge.cli.embedded_redis import free_port
from tests.conftest import HOOK_TOKEN, EdgeServer, ctrader_env
from tests.fake_ctrader import FakeCTrader

CONVERSIONS = "invite:conversions"


def start_hook_edge(
    edge_factory: Callable[..., EdgeServer], fake: FakeCTrader, **overrides: str
) -> EdgeServer:
    return edge_factory(**ctrader_env(fake, **overrides))


def call_hook(edge: EdgeServer, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", {"Authorization": f"Bearer {HOOK_TOKEN}"})
    with edge.client() as client:
        if isinstance(body, bytes):
            return client.post(path, content=body, headers=headers, **kwargs)
        return client.post(path, json=body, headers=headers, **kwargs)


def conversions(client: redis.Redis) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"e"]) for _, fields in client.xrange(CONVERSIONS)]


class WebhookReceiver:
    """A partner's webhook endpoint on loopback: records what it gets, can fail first."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                failing = receiver.failures > 0
                if failing:
                    receiver.failures -= 1
                else:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()},
                                              body))
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/invite-hook"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
