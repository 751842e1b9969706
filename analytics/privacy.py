"""Erasing a person: `DELETE /api/privacy/visitors/{visitorId}` and `/users/{userId}` (admin).

Their raw rows go from everywhere they are kept: the Redis streams the batcher has not moved yet
and the dead letters, `invite.clicks`, `invite.conversions` and its registrations with their
clicks' codes (`invite.registration_codes`). The aggregated views keep their
counts, which hold no identities (visitor states are HyperLogLog sketches of hashes).
Their funnel events go too (`invite.events`, `invite.events_credited`, the event stream); the
commissions ledger keeps their lines (what partners were paid: accounting records) with the
person's id removed. The answer says how many rows went from each place.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson
from clickhouse_connect.driver.client import Client
from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from analytics.auth import ViewerAuth
from analytics.events.schema import ROLLUP_TABLES as EVENT_ROLLUP_TABLES
from analytics.schema import DATABASE, clear_stores
from edge.config import Settings
from edge.errors import Forbidden, InvalidInput, Unavailable
from edge.redis_client import as_text, open_redis
from edge.spelling import whole_number
from edge.streams import (
    CLICK_DEAD_LETTERS,
    CLICK_STREAM,
    CONVERSION_DEAD_LETTERS,
    CONVERSION_STREAM,
    EVENT_DEAD_LETTERS,
    EVENT_STREAM,
    decode_payload,
    entry_payload,
)
from edge.web import NO_STORE

# The outbox's keys (edge/sso/jobs.py, registrations.py) are named here, not imported: analytics
# reads the edge's kernel and registry only.
OUTBOX_PREFIX: Final = "invite:{outbox}:"
OUTBOX_DEAD_LETTERS: Final = OUTBOX_PREFIX + "dead"
VISITOR_ID: Final = re.compile(r"[\x21-\x7e]{1,128}")
SCAN_PAGE: Final = 1000
REDIS_TIMEOUT_S: Final = 10.0
MAX_USER_ID: Final = 2**63 - 1

Match = Callable[[dict[str, Any]], bool]


async def erase_from_stream(
    redis: Redis, stream: str, matches: Match, needles: Iterable[str]
) -> int:
    """XDEL the entries whose event `matches`; an entry that is no JSON (a dead letter) goes when
    its text holds one of the quoted `needles`. Returns how many went."""
    quoted = [orjson.dumps(needle) for needle in needles]
    doomed: list[str] = []
    start = "-"
    while True:
        page: list[tuple[Any, Any]] = await redis.xrange(
            stream, start, "+", count=SCAN_PAGE
        ) or []
        for entry_id, fields in page:
            payload = entry_payload(fields)
            raw = payload.encode() if isinstance(payload, str) else payload or b""
            try:
                hit = matches(decode_payload(payload))
            except Exception:  # not an event: judged by its text
                hit = any(needle in raw for needle in quoted)
            if hit:
                doomed.append(as_text(entry_id))
        if len(page) < SCAN_PAGE:
            break
        start = "(" + as_text(page[-1][0])
    for index in range(0, len(doomed), SCAN_PAGE):
        await redis.xdel(stream, *doomed[index : index + SCAN_PAGE])
    return len(doomed)


def _delete(client: Client, table: str, where: str, parameters: dict[str, Any]) -> int:
    """Count, then delete (lightweight, synchronous) the rows of `table` matching `where`."""
    count = int(client.query(
        f"SELECT count() FROM {DATABASE}.{table} WHERE {where}",  # noqa: S608 - our constants
        parameters=parameters,
    ).result_rows[0][0])
    if count:
        client.command(
            f"DELETE FROM {DATABASE}.{table} WHERE {where}",  # noqa: S608 - our constants
            parameters=parameters, settings={"lightweight_deletes_sync": 2},
        )
    return count


def _unnamed_lines(client: Client, user_id: str) -> int:
    """The ledger keeps a person's commission lines (accounting records: what partners were
    paid), without the person's id."""
    count = int(client.query(
        f"SELECT count() FROM {DATABASE}.commissions WHERE user_id = {{user:String}}",  # noqa: S608
        parameters={"user": user_id}).result_rows[0][0])
    if count:
        client.command(
            f"ALTER TABLE {DATABASE}.commissions UPDATE user_id = '' "
            "WHERE user_id = {user:String}",
            parameters={"user": user_id}, settings={"mutations_sync": 2})
    return count


def _visitor_rows(client: Client, visitor_ids: list[str], click_ids: list[str]) -> int:
    if not visitor_ids and not click_ids:
        return 0
    return _delete(
        client, "clicks",
        "visitor_id IN {visitors:Array(String)} OR toString(click_id) IN {clicks:Array(String)}",
        {"visitors": visitor_ids, "clicks": click_ids},
    )


def _user_links(client: Client, user_id: str) -> tuple[list[str], list[str]]:
    """The click ids a user's registrations came from, and the visitors of those clicks."""
    click_ids = [str(row[0]) for row in client.query(
        f"SELECT DISTINCT click_id FROM {DATABASE}.conversions "  # noqa: S608
        "WHERE user_id = {user:String} AND click_id != ''",
        parameters={"user": user_id},
    ).result_rows]
    if not click_ids:
        return [], []
    visitors = [str(row[0]) for row in client.query(
        f"SELECT DISTINCT visitor_id FROM {DATABASE}.clicks "  # noqa: S608
        "WHERE toString(click_id) IN {clicks:Array(String)}",
        parameters={"clicks": click_ids},
    ).result_rows]
    return click_ids, visitors


class Privacy:
    """The erasure routes; ClickHouse through the API's shared client, Redis opened per request
    (erasures are rare)."""

    def __init__(self, settings: Settings, ask: Callable[[Callable[[Client], Any]], Any]) -> None:
        self._settings = settings
        self._auth = ViewerAuth(settings)
        # Runs a blocking step on the shared client, ClickHouse's failures turned into 503s.
        self._ask = ask
        # A click the batcher read just before its entry was erased reaches ClickHouse within a
        # flush (and its insert): the ClickHouse rows are erased once more after that.
        self._settle_s = settings.batcher.flush_interval_s * 2 + 1.0

    def routes(self) -> list[Route]:
        return [
            Route("/api/privacy/visitors/{visitor_id}", self.erase_visitor, methods=["DELETE"]),
            Route("/api/privacy/users/{user_id}", self.erase_user, methods=["DELETE"]),
        ]

    def _redis(self) -> Redis:
        if not self._settings.redis_url:
            raise Unavailable("erasing needs the streams too: set INVITE_REDIS_URL")
        return open_redis(self._settings.redis_url, timeout_s=REDIS_TIMEOUT_S)

    def _admin(self, request: Request) -> None:
        if not self._auth.viewer(request).is_admin:
            raise Forbidden("only the admin token may erase people")

    async def _clickhouse(self, work: Callable[[Client], Any]) -> Any:
        return await run_in_threadpool(self._ask, work)

    async def erase_visitor(self, request: Request) -> Response:
        self._admin(request)
        visitor_id = request.path_params["visitor_id"]
        if VISITOR_ID.fullmatch(visitor_id) is None:
            raise InvalidInput("visitorId must be 1-128 printable ASCII characters")
        erased: dict[str, int] = {}
        redis = self._redis()
        try:
            for stream in (CLICK_STREAM, CLICK_DEAD_LETTERS):
                erased[f"redis:{stream}"] = await erase_from_stream(
                    redis, stream, lambda event: event.get("visitor_id") == visitor_id,
                    [visitor_id],
                )
        finally:
            await redis.aclose()
        erased["clickhouse:clicks"] = await self._clicks_twice([visitor_id], [])
        return JSONResponse({"visitorId": visitor_id, "erased": erased}, headers=NO_STORE)

    async def erase_user(self, request: Request) -> Response:
        self._admin(request)
        user_id = str(whole_number(request.path_params["user_id"], "userId", 1, MAX_USER_ID))
        click_ids, visitors = await self._clickhouse(lambda client: _user_links(client, user_id))
        erased: dict[str, int] = {}
        redis = self._redis()
        try:
            erased.update(await self._user_in_redis(redis, user_id, click_ids, visitors))
        finally:
            await redis.aclose()
        # Its registrations (as conversions names them, so before those go) and their clicks.
        erased["clickhouse:registration_codes"] = await self._clickhouse(
            lambda client: _delete(
                client, "registration_codes",
                f"event_id IN (SELECT event_id FROM {DATABASE}.conversions "  # noqa: S608
                "WHERE user_id = {user:String}) OR click_id IN {clicks:Array(String)}",
                {"user": user_id, "clicks": click_ids}))
        erased["clickhouse:conversions"] = await self._clickhouse(
            lambda client: _delete(client, "conversions", "user_id = {user:String}",
                                   {"user": user_id})
        )
        erased["clickhouse:clicks"] = await self._clicks_twice(visitors, click_ids)
        for table in ("events", "events_credited", *EVENT_ROLLUP_TABLES):
            erased[f"clickhouse:{table}"] = await self._clickhouse(
                functools.partial(_delete, table=table, where="user_id = {user:String}",
                                  parameters={"user": user_id}))
        erased["clickhouse:commissions (user id removed)"] = await self._clickhouse(
            lambda client: _unnamed_lines(client, user_id))
        # The deletes gave the views' parts new data versions; a series computed while they
        # ran may not have seen it.
        await self._clickhouse(clear_stores)
        return JSONResponse({"userId": int(user_id), "erased": erased}, headers=NO_STORE)

    async def _user_in_redis(
        self, redis: Redis, user_id: str, click_ids: list[str], visitors: list[str]
    ) -> dict[str, int]:
        erased: dict[str, int] = {}
        for stream in (CONVERSION_STREAM, CONVERSION_DEAD_LETTERS, EVENT_STREAM,
                       EVENT_DEAD_LETTERS):
            erased[f"redis:{stream}"] = await erase_from_stream(
                redis, stream, lambda event: str(event.get("user_id", "")) == user_id, [user_id]
            )
        known_clicks, known_visitors = set(click_ids), set(visitors)
        for stream in (CLICK_STREAM, CLICK_DEAD_LETTERS):
            erased[f"redis:{stream}"] = await erase_from_stream(
                redis, stream,
                lambda event: event.get("click_id") in known_clicks
                or event.get("visitor_id") in known_visitors,
                [*click_ids, *visitors],
            )

        def outbox_letter(letter: dict[str, Any]) -> bool:
            job = letter.get("job")
            if not isinstance(job, dict):
                return False
            conversion = job.get("conversion")
            return str(job.get("userId", "")) == user_id or (
                isinstance(conversion, dict) and str(conversion.get("user_id", "")) == user_id
            )

        erased[f"redis:{OUTBOX_DEAD_LETTERS}"] = await erase_from_stream(
            redis, OUTBOX_DEAD_LETTERS, outbox_letter, [user_id]
        )
        keys = [key async for key in redis.scan_iter(
            match=f"{OUTBOX_PREFIX}job:assign:u:{user_id}:*", count=SCAN_PAGE
        )]
        keys += [f"{OUTBOX_PREFIX}user:{user_id}", f"{OUTBOX_PREFIX}pending:{user_id}"]
        erased["redis:outbox state"] = int(await redis.delete(*keys))
        return erased

    async def _clicks_twice(self, visitors: list[str], click_ids: list[str]) -> int:
        first = await self._clickhouse(lambda client: _visitor_rows(client, visitors, click_ids))
        await asyncio.sleep(self._settle_s)
        late = await self._clickhouse(lambda client: _visitor_rows(client, visitors, click_ids))
        return int(first) + int(late)
