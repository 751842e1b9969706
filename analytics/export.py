"""The raw clicks as CSV: one query streamed from ClickHouse on a connection of its own, closed
when the download ends however it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, Final, cast

import anyio
from clickhouse_connect.driver.client import Client
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from analytics import rollups
from analytics.filters import ClickFilter
from analytics.queries import Query, select_final
from analytics.rollups import raw_where
from edge.web import NO_STORE, error_response

# An export holds its own ClickHouse connection for as long as the download lasts.
MAX_CONCURRENT_EXPORTS: Final = 2
EXPORT_TIMEOUT_S: Final = 3600
CSV_CHUNK_BYTES: Final = 256 * 1024
EXPORT_SETTINGS: Final = (
    f" SETTINGS {rollups.RAW_SETTINGS}, max_execution_time = {EXPORT_TIMEOUT_S}"
)
CSV_COLUMNS: Final = (
    "click_id", "ts", "partner_id", "ancestors", "campaign", "sub_id", "code", "kind",
    "is_human", "outcome", "country", "device", "os", "browser", "bot_family", "referer_host",
    "visitor_id", "first_click", "method",
)
_CSV_EXPRESSIONS: Final = {"ancestors": "arrayStringConcat(ancestors, '>')"}
# Text columns, whose values come from outside (campaigns, CDN headers, a clicker's Referer).
_CSV_TEXT: Final = frozenset({
    "partner_id", "ancestors", "campaign", "sub_id", "code", "kind", "outcome", "country",
    "device", "os", "browser", "bot_family", "referer_host", "visitor_id", "method",
})
# OWASP's CSV injection rule: a cell a spreadsheet would read as a formula gets a leading "'".
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_START_SQL: Final = "'^[=+\\-@\\t\\r]'"


def neutralized_cell(value: str) -> str:
    """A text cell of a CSV export, safe to open in a spreadsheet."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_column(name: str) -> str:
    expression = _CSV_EXPRESSIONS.get(name, name)
    if name not in _CSV_TEXT:
        return expression
    neutralized = (
        f"if(match({expression}, {_FORMULA_START_SQL}), concat('\\'', {expression}), "
        f"{expression})"
    )
    return f"{neutralized} AS csv_{name}"


def clicks_csv_query(f: ClickFilter) -> Query:
    """Raw click rows in table order, so ClickHouse streams them without sorting the range."""
    where, parameters = raw_where(f)
    columns = ", ".join(_csv_column(name) for name in CSV_COLUMNS)
    tail = "ORDER BY partner_id, ts, click_id"
    return Query(select_final(columns, "clicks", where, tail, EXPORT_SETTINGS), parameters)


def clicks_csv(client: Client, f: ClickFilter) -> Iterator[bytes]:
    """The filter's clicks as CSV chunks: a header line, then rows as ClickHouse streams them.

    The query starts here, so a failing ClickHouse raises before the first chunk is asked for;
    the stream holds `client` until the iterator is exhausted or closed.
    """
    query = clicks_csv_query(f)
    stream = client.raw_stream(query.sql, parameters=query.parameters, fmt="CSV")
    return _csv_chunks(cast(IO[bytes], stream))


def _csv_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    try:
        yield (",".join(CSV_COLUMNS) + "\n").encode()
        while chunk := stream.read(CSV_CHUNK_BYTES):
            yield chunk
    finally:
        stream.close()


class Export:
    """One CSV download: its stream, its own client and its export slot, each released once."""

    def __init__(self, chunks: Iterator[bytes], client: Client, release: Callable[[], None]):
        self._chunks = chunks
        self._client = client
        self._release = release
        self._closed = False

    async def body(self) -> AsyncIterator[bytes]:
        try:
            # A worker thread per chunk: reading the stream blocks. anyio lets a cancelled
            # download finish the chunk in hand first, so close() never races a read.
            while chunk := await run_in_threadpool(next, self._chunks, b""):
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self._close)
        finally:
            self._release()

    def _close(self) -> None:
        close = getattr(self._chunks, "close", None)
        try:
            if close is not None:
                close()
        finally:
            self._client.close()


class ExportResponse(StreamingResponse):
    """Streams an export and closes it afterwards, also when the client left before the first
    chunk (the body generator never starts then, so its own `finally` cannot run)."""

    def __init__(self, export: Export, headers: dict[str, str]) -> None:
        super().__init__(export.body(), media_type="text/csv; charset=utf-8", headers=headers)
        self._export = export

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._export.aclose()


class Exports:
    """The CSV downloads of one API: at most MAX_CONCURRENT_EXPORTS at once, each on a client of
    its own (`open_client`), started through `call` (which turns ClickHouse's failures into the
    API's errors)."""

    def __init__(
        self, open_client: Callable[[], Client], call: Callable[..., Iterator[bytes]]
    ) -> None:
        self._open_client = open_client
        self._call = call
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_EXPORTS)

    async def start(self, f: ClickFilter) -> Response:
        if self._slots.locked():
            return error_response(
                429, "too_many_exports",
                f"{MAX_CONCURRENT_EXPORTS} exports are running; retry when one has finished",
                NO_STORE,
            )
        await self._slots.acquire()  # released by the export, however the download ends
        try:
            client = await run_in_threadpool(self._open_client)
            try:
                chunks = await run_in_threadpool(self._call, clicks_csv, client, f)
            except BaseException:
                await run_in_threadpool(client.close)
                raise
        except BaseException:
            self._slots.release()
            raise
        headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{csv_name(f)}"'}
        return ExportResponse(Export(chunks, client, self._slots.release), headers)


def csv_name(f: ClickFilter) -> str:
    who = "".join(c if c.isalnum() or c in "._-" else "_" for c in f.partner_id or "all")
    return f"clicks-{who}-{f.start:%Y%m%d}-{f.end:%Y%m%d}.csv"
