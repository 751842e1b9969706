"""The analytics API and dashboard: the admin token sees everything, a partner token its subtree."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from analytics import queries
from analytics.auth import TokenRevocations, Viewer, ViewerAuth
from analytics.clickhouse import open_clickhouse, redact_url
from analytics.params import FILTER_PARAMETERS, parse_filter, parse_limit, single_values
from analytics.queries import BreakdownRow, ClickFilter, SeriesPoint, Summary
from edge.app import http_error_json
from edge.config import Settings
from edge.errors import Forbidden, InvalidInput, InviteError

log = logging.getLogger("invite.analytics")

# The shared client runs one query at a time in embedded mode; more waiting threads would only
# take anyio's thread pool away from the rest of the process.
MAX_CONCURRENT_QUERIES: Final = 4
# An export holds its own ClickHouse connection for as long as the download lasts.
MAX_CONCURRENT_EXPORTS: Final = 2
DASHBOARD_DIR: Final = Path(__file__).parent / "dashboard"
DASHBOARD_ASSETS: Final = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
DASHBOARD_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
NO_STORE: Final = {"Cache-Control": "private, no-store"}
# ClickHouse errors that mean "not now" rather than "wrong question": answered with 503.
UNAVAILABLE_CODES: Final = {
    60: "a table is missing: run `invite migrate`",  # UNKNOWN_TABLE
    81: "database `invite` is missing: run `invite migrate`",  # UNKNOWN_DATABASE
    159: "the query took too long: narrow from..to or retry later",  # TIMEOUT_EXCEEDED
    202: "ClickHouse is busy: retry later",  # TOO_MANY_SIMULTANEOUS_QUERIES
    241: "ClickHouse ran out of memory: narrow from..to or retry later",  # MEMORY_LIMIT_EXCEEDED
}

ClientProvider = Callable[[], Client]
Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


class ClickHouseUnavailable(Exception):
    """ClickHouse could not be reached or could not answer now; the message says what to do."""


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def filter_json(f: ClickFilter) -> dict[str, Any]:
    return {
        "from": _iso(f.start),
        "to": _iso(f.end),
        "partnerId": f.partner_id,
        "includeDownline": f.include_downline,
        "campaign": f.campaign,
    }


def summary_json(f: ClickFilter, summary: Summary) -> dict[str, Any]:
    return {
        "filter": filter_json(f),
        "clicks": summary.clicks,
        "humanClicks": summary.human_clicks,
        "botClicks": summary.bot_clicks,
        "uniqueVisitors": summary.unique_visitors,
        "registrations": summary.registrations,
        "conversionRate": summary.conversion_rate,
        "suspendedClicks": summary.suspended_clicks,
        "orphanClicks": summary.orphan_clicks,
        "unresolvedClicks": summary.unresolved_clicks,
    }


def point_json(point: SeriesPoint) -> dict[str, Any]:
    return {
        "start": _iso(point.start),
        "clicks": point.clicks,
        "humanClicks": point.human_clicks,
        "botClicks": point.bot_clicks,
        "uniqueVisitors": point.unique_visitors,
        "registrations": point.registrations,
    }


def breakdown_row_json(row: BreakdownRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "clicks": row.clicks,
        "humanClicks": row.human_clicks,
        "botClicks": row.bot_clicks,
        "uniqueVisitors": row.unique_visitors,
        "registrations": row.registrations,
    }


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=NO_STORE)


def _json_errors(endpoint: Endpoint) -> Endpoint:
    """Errors as `{"error": {"code", "message"}}`, whichever app mounts these routes."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except InviteError as exc:
            return JSONResponse(exc.to_json(), exc.status, headers=NO_STORE)
        except ClickHouseUnavailable as exc:
            return _error(503, "clickhouse_unavailable", str(exc))
        except DatabaseError as exc:
            log.exception("analytics query failed")
            return _error(500, "query_failed", f"ClickHouse refused the query (code {exc.code})")

    return guarded


class AnalyticsApi:
    def __init__(
        self,
        settings: Settings,
        client_provider: ClientProvider,
        export_client_factory: ClientProvider,
    ) -> None:
        self._settings = settings
        self._auth = ViewerAuth(settings)
        self._revocations = TokenRevocations()
        self._client_provider = client_provider
        self._export_client_factory = export_client_factory
        self._queries = asyncio.Semaphore(MAX_CONCURRENT_QUERIES)
        self._exports = asyncio.Semaphore(MAX_CONCURRENT_EXPORTS)
        self._clickhouse_down = False

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/analytics/summary", _json_errors(self.summary), methods=["GET"]),
            Route("/api/analytics/timeseries", _json_errors(self.timeseries), methods=["GET"]),
            Route("/api/analytics/breakdown", _json_errors(self.breakdown), methods=["GET"]),
            Route("/api/analytics/clicks.csv", _json_errors(self.clicks_csv), methods=["GET"]),
            Route("/dashboard", dashboard_page, methods=["GET"]),
            Route("/dashboard/{asset}", dashboard_asset, methods=["GET"]),
        ]

    async def summary(self, request: Request) -> Response:
        viewer, f, _ = self._question(request)
        result = await self._ask(viewer, f, lambda client: queries.summary(client, f))
        return JSONResponse(summary_json(f, result), headers=NO_STORE)

    async def timeseries(self, request: Request) -> Response:
        viewer, f, extra = self._question(request, "interval")
        interval = extra.get("interval", "day")
        queries.check_interval(f, interval)
        points = await self._ask(viewer, f, lambda client: queries.timeseries(client, f, interval))
        body = {"filter": filter_json(f), "interval": interval,
                "points": [point_json(point) for point in points]}
        return JSONResponse(body, headers=NO_STORE)

    async def breakdown(self, request: Request) -> Response:
        viewer, f, extra = self._question(request, "by", "limit")
        if "by" not in extra:
            raise InvalidInput(f"by is required: one of {', '.join(queries.DIMENSIONS)}")
        by = extra["by"]
        queries.dimension_column(by)
        limit = parse_limit(extra.get("limit"))
        rows = await self._ask(viewer, f, lambda client: queries.breakdown(client, f, by, limit))
        body = {"filter": filter_json(f), "by": by, "limit": limit,
                "rows": [breakdown_row_json(row) for row in rows]}
        return JSONResponse(body, headers=NO_STORE)

    async def clicks_csv(self, request: Request) -> Response:
        viewer, f, _ = self._question(request)
        await self._ask(viewer, f, lambda client: None)
        if self._exports.locked():
            return _error(
                429, "too_many_exports",
                f"{MAX_CONCURRENT_EXPORTS} exports are running; retry when one has finished",
            )
        await self._exports.acquire()  # released by the export, however the download ends
        try:
            client = await run_in_threadpool(self._open_export_client)
            try:
                chunks = await run_in_threadpool(self._call, queries.clicks_csv, client, f)
            except BaseException:
                await run_in_threadpool(client.close)
                raise
        except BaseException:
            self._exports.release()
            raise
        headers = {**NO_STORE, "Content-Disposition": f'attachment; filename="{_csv_name(f)}"'}
        return ExportResponse(Export(chunks, client, self._exports.release), headers)

    def _question(
        self, request: Request, *extra: str
    ) -> tuple[Viewer, ClickFilter, dict[str, str]]:
        viewer = self._auth.viewer(request)
        values = single_values(request.query_params, FILTER_PARAMETERS + extra)
        f = parse_filter(values, viewer, datetime.now(UTC))
        return viewer, f, {name: values[name] for name in extra if name in values}

    async def _ask(self, viewer: Viewer, f: ClickFilter, question: Callable[[Client], T]) -> T:
        """Run a question on the shared client in a worker thread, after checking the partner
        token (401 when revoked) and its scope (403 for a partner outside its subtree, its
        ancestors included)."""

        def scoped(client: Client) -> T:
            self._revocations.check(client, viewer)
            root = viewer.partner_id
            if root is not None and f.partner_id is not None and not queries.in_subtree(
                client, root, f.partner_id
            ):
                raise Forbidden(f"partner {f.partner_id} is not in the subtree of {root}")
            return question(client)

        async with self._queries:
            return await run_in_threadpool(self._call_with_shared_client, scoped)

    def _call_with_shared_client(self, question: Callable[[Client], T]) -> T:
        try:
            client = self._client_provider()
        except ClickHouseUnavailable:
            raise
        except Exception as exc:
            raise self._unavailable(exc) from exc
        answer = self._call(question, client)
        if self._clickhouse_down:
            self._clickhouse_down = False
            log.info("clickhouse answers again")
        return answer

    def _open_export_client(self) -> Client:
        try:
            return self._export_client_factory()
        except Exception as exc:
            raise self._unavailable(exc) from exc

    def _call(self, question: Callable[..., T], *args: Any) -> T:
        try:
            return question(*args)
        except OperationalError as exc:
            raise self._unavailable(exc) from exc
        except DatabaseError as exc:
            hint = UNAVAILABLE_CODES.get(exc.code or 0)
            if hint is None:
                raise
            raise ClickHouseUnavailable(f"ClickHouse could not answer: {hint}") from exc

    def _unavailable(self, exc: Exception) -> ClickHouseUnavailable:
        url = redact_url(self._settings.clickhouse_url)
        if not self._clickhouse_down:  # once per outage, not once per request
            self._clickhouse_down = True
            log.warning("clickhouse unavailable at %s: %s", url, exc)
        return ClickHouseUnavailable(
            f"ClickHouse at {url} did not answer ({type(exc).__name__}): check that it is "
            "running and that INVITE_CLICKHOUSE_URL points at it, then retry"
        )


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


def _csv_name(f: ClickFilter) -> str:
    who = "".join(c if c.isalnum() or c in "._-" else "_" for c in f.partner_id or "all")
    return f"clicks-{who}-{f.start:%Y%m%d}-{f.end:%Y%m%d}.csv"


async def dashboard_page(request: Request) -> Response:
    return FileResponse(
        DASHBOARD_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": DASHBOARD_CSP, "Cache-Control": "no-cache"},
    )


async def dashboard_asset(request: Request) -> Response:
    asset = request.path_params["asset"]
    media_type = DASHBOARD_ASSETS.get(asset)
    if media_type is None:
        return _error(404, "not_found", f"no dashboard asset {asset[:40]!r}")
    return FileResponse(
        DASHBOARD_DIR / asset, media_type=media_type, headers={"Cache-Control": "no-cache"}
    )


def create_analytics_routes(
    settings: Settings,
    client_provider: ClientProvider,
    *,
    export_client_factory: ClientProvider | None = None,
) -> list[BaseRoute]:
    """The analytics routes, for any Starlette app (the edge's in `invite run`).

    `client_provider` returns the process's shared client for each question. A CSV export streams
    on a connection of its own from `export_client_factory` (default: a new client on
    INVITE_CLICKHOUSE_URL), closed when the download ends: in embedded mode a stream holds its
    client's connection, and the batcher and the other questions must not wait for a download.
    """
    factory = export_client_factory or (lambda: open_clickhouse(settings.clickhouse_url))
    return AnalyticsApi(settings, client_provider, factory).routes()


def create_analytics_app(settings: Settings, client: Client | ClientProvider) -> Starlette:
    """The app of `invite analytics`: the analytics routes on one shared client, given as is or
    as a provider (one opened in a lifespan). The caller owns the client and closes it."""
    provider: ClientProvider = client if callable(client) else lambda: client

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await run_in_threadpool(lambda: provider().query("SELECT 1"))
        except Exception as exc:
            return JSONResponse(
                {"status": "unavailable", "clickhouse": f"unreachable ({type(exc).__name__})"},
                status_code=503,
            )
        return JSONResponse({"status": "ready", "clickhouse": "ok"})

    async def home(request: Request) -> Response:
        return RedirectResponse("/dashboard", status_code=302)

    return Starlette(
        routes=[
            Route("/", home),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *create_analytics_routes(settings, provider),
        ],
        exception_handlers={HTTPException: http_error_json},
    )
