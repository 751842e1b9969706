"""The optional access log (INVITE_ACCESS_LOG=1): one line per request, the client's IP as its
/24 or /48 as in click events, the path without its query (it may carry a person's data)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive, Scope, Send

from edge.hotpath.anonymize import ip_prefix

log = logging.getLogger("invite.access")

MAX_PATH = 200
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class AccessLog:
    def __init__(self, client_ip_header: str | None) -> None:
        self._ip_header = client_ip_header.encode() if client_ip_header else None

    def wrap(self, app: App) -> App:
        """`app` with a line logged for each HTTP request it answers."""

        async def logged(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            await self._serve(scope, receive, send, app)

        return logged

    async def _serve(self, scope: Scope, receive: Receive, send: Send, app: App) -> None:
        started = time.perf_counter()
        status = 0

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, sent)
        finally:
            log.info(
                "%s %s %d %.1f ms %s", scope["method"], scope["path"][:MAX_PATH], status,
                (time.perf_counter() - started) * 1000, self._client(scope) or "-",
            )

    def _client(self, scope: Scope) -> str:
        if self._ip_header is not None:
            for name, value in scope["headers"]:
                if name == self._ip_header:
                    return ip_prefix(value.decode("latin-1").split(",", 1)[0])
        client = scope.get("client")
        return ip_prefix(client[0]) if client else ""
