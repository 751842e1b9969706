"""Outgoing HTTP for cTrader and partner webhooks: httpx clients in small connection pools.

httpcore's pool spends CPU on every request in proportion to the connections it holds, so calls
go round-robin over small clients (docs/benchmarks.md, "SSO hooks").
"""

from __future__ import annotations

import itertools
import ssl
from typing import Any

import certifi
import httpx

SHARDS = 16
CONNECTIONS_PER_SHARD = 4


class HttpPool:
    def __init__(self, shards: int = SHARDS, connections: int = CONNECTIONS_PER_SHARD) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        # One context for all (httpx's default CA bundle): each client loading the bundle
        # itself took ~0.1 s apiece.
        context = ssl.create_default_context(cafile=certifi.where())
        self._clients = [httpx.AsyncClient(limits=limits, verify=context) for _ in range(shards)]
        self._next = itertools.cycle(self._clients)

    async def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        return await next(self._next).request(method, url, **options)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
