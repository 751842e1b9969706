"""The partners dimension: the Redis registry copied into `invite.partners` for joins.

A full pass every `interval_s` and, sooner, after each partner change announced on the
registry's change channel. Only rows that differ from the last copy are inserted; the table is a
ReplacingMergeTree on `updated_at` (equal versions: the last insert wins, which covers
re-parentings, since they rewrite a subtree's ancestors without touching `updated_at`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from analytics.schema import DATABASE
from edge.redis_client import as_text
from edge.registry.keys import CHANGES_CHANNEL, partner_key
from edge.registry.partners import TOKENS_NOT_BEFORE
from edge.shutdown import cancel_within

log = logging.getLogger("invite.partners_sync")

SYNC_INTERVAL_S = 60.0
# Registry edits come in bursts (a tree import, a re-parenting): one pass after the burst.
CHANGE_DEBOUNCE_S = 0.5
SCAN_COUNT = 1000
RESUBSCRIBE_DELAY_S = 1.0

PARTNER_COLUMNS = (
    "partner_id", "parent_id", "type", "status", "name", "ancestors", "level", "updated_at",
    "tokens_not_before",
)
_PARTNER_TYPES = (
    "String", "String", "LowCardinality(String)", "LowCardinality(String)", "String",
    "Array(String)", "UInt8", "DateTime64(3, 'UTC')", "DateTime64(3, 'UTC')",
)
_PATTERN = partner_key("*")

PartnerRow = tuple[str, str, str, str, str, tuple[str, ...], int, int, int]


def partner_row(partner_id: str, fields: dict[str, str]) -> PartnerRow:
    """The `invite.partners` row of one registry hash (updated_at, tokens_not_before in ms)."""
    ancestors = tuple(str(a) for a in orjson.loads(fields.get("ancestors") or "[]"))
    return (
        partner_id,
        fields.get("parent") or "",
        fields.get("type") or "individual",
        fields.get("status") or "active",
        fields.get("name") or "",
        ancestors,
        len(ancestors) + 1,
        int(fields.get("updated_at") or 0),
        int(fields.get(TOKENS_NOT_BEFORE) or 0),
    )


class PartnersSync:
    def __init__(
        self,
        redis: Redis,
        clickhouse: Client,
        *,
        interval_s: float = SYNC_INTERVAL_S,
        feed: Redis | None = None,
    ) -> None:
        self._redis = redis
        self._clickhouse = clickhouse
        self._interval = interval_s
        self._feed = feed  # a client without read timeout, for the change channel
        self._copied: dict[str, PartnerRow] | None = None
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self.passes = 0

    def stop(self) -> None:
        self._stopping.set()

    async def sync_once(self) -> int:
        """Copy what changed since the last pass; returns the number of rows inserted."""
        if self._copied is None:
            self._copied = await asyncio.to_thread(self._load_copied)
        rows = await self._registry_rows()
        changed = [row for row in rows if self._copied.get(row[0]) != row]
        if changed:
            await asyncio.to_thread(self._insert, changed)
            for row in changed:
                self._copied[row[0]] = row
        self.passes += 1
        return len(changed)

    async def _registry_rows(self) -> list[PartnerRow]:
        keys = [key async for key in self._redis.scan_iter(match=_PATTERN, count=SCAN_COUNT)]
        rows: list[PartnerRow] = []
        prefix_length = len(_PATTERN) - 1
        for start in range(0, len(keys), SCAN_COUNT):
            chunk = keys[start : start + SCAN_COUNT]
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in chunk:
                    pipe.hgetall(key)
                replies = await pipe.execute()
            for key, fields in zip(chunk, replies, strict=True):
                if fields:
                    rows.append(partner_row(as_text(key)[prefix_length:], _texts(fields)))
        return rows

    def _load_copied(self) -> dict[str, PartnerRow]:
        result = self._clickhouse.query(
            "SELECT partner_id, parent_id, type, status, name, ancestors, level, "
            "toUnixTimestamp64Milli(updated_at), toUnixTimestamp64Milli(tokens_not_before) "
            "FROM invite.partners FINAL"
        )
        return {
            str(row[0]): (
                str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]),
                tuple(row[5]), int(row[6]), int(row[7]), int(row[8]),
            )
            for row in result.result_rows
        }

    def _insert(self, rows: list[PartnerRow]) -> None:
        self._clickhouse.insert(
            "partners",
            [list(row) for row in rows],  # times as ms: DateTime64(3) ticks
            database=DATABASE,
            column_names=list(PARTNER_COLUMNS),
            column_type_names=list(_PARTNER_TYPES),
        )

    async def run(self) -> None:
        """Sync every interval_s and soon after each partner change, until stop()."""
        watcher = asyncio.create_task(self._watch()) if self._feed is not None else None
        try:
            while not self._stopping.is_set():
                try:
                    await self.sync_once()
                except (RedisError, OSError, ClickHouseError) as exc:
                    log.warning("partners sync failed (%s); next pass in %.0f s",
                                type(exc).__name__, self._interval)
                self._changed.clear()
                await _first(self._stopping.wait(), self._changed.wait(), within_s=self._interval)
                if self._changed.is_set() and not self._stopping.is_set():
                    await _first(self._stopping.wait(), within_s=CHANGE_DEBOUNCE_S)
        finally:
            if watcher is not None:
                await cancel_within((watcher,))

    async def _watch(self) -> None:
        assert self._feed is not None
        while True:
            try:
                async with self._feed.pubsub() as pubsub:
                    await pubsub.subscribe(CHANGES_CHANNEL)
                    self._changed.set()  # changes made while we were not listening
                    async for message in pubsub.listen():
                        data = as_text(message.get("data", b""))
                        if message.get("type") == "message" and data.startswith("p:"):
                            self._changed.set()
            except (RedisError, OSError) as exc:
                log.warning("partner change feed lost (%s); retrying", type(exc).__name__)
            await asyncio.sleep(RESUBSCRIBE_DELAY_S)


async def _first(*waits: Any, within_s: float) -> None:
    """Wait until any of the awaitables finishes or the timeout passes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def _texts(fields: dict[Any, Any]) -> dict[str, str]:
    return {as_text(name): as_text(value) for name, value in fields.items()}
