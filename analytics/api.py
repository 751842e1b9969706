"""The analytics API: the admin token sees everything, a partner token its own subtree."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from analytics import answers, dashboard, export, names, partner_scope, queries, tree
from analytics.auth import TokenRevocations, Viewer, ViewerAuth
from analytics.clickhouse import open_clickhouse
from analytics.commissions.api import CommissionsApi
from analytics.description import analytics_docs_routes
from analytics.events import queries as funnel_events
from analytics.filters import (
    FILTER_PARAMETERS,
    ClickFilter,
    filter_json,
    parse_filter,
    parse_limit,
    single_values,
)
from analytics.portal.routes import Portal
from analytics.privacy import Privacy
from analytics.readiness import batcher_check, clickhouse_check
from analytics.side import SideParts
from edge.config import Settings
from edge.errors import ClickHouseUnavailable, Forbidden, InvalidInput, InviteError
from edge.logs import redact_url
from edge.web import (
    EXCEPTION_HANDLERS,
    NO_STORE,
    error_response,
    healthz,
    invite_error_response,
    readiness,
)

log = logging.getLogger("invite.analytics")

# The shared client runs one query at a time in embedded mode; more waiting threads would only
# take anyio's thread pool away from the rest of the process.
MAX_CONCURRENT_QUERIES: Final = 4
# An export holds its own ClickHouse connection for as long as the download lasts.
MAX_CONCURRENT_EXPORTS: Final = export.MAX_CONCURRENT_EXPORTS
# ClickHouse errors that mean "not now" rather than "wrong question": answered with 503.
UNAVAILABLE_CODES: Final = {
    60: "a table is missing: run `invite migrate`",  # UNKNOWN_TABLE
    81: "database `invite` is missing: run `invite migrate`",  # UNKNOWN_DATABASE
    159: "the query took too long: narrow from..to or retry later",  # TIMEOUT_EXCEEDED
    202: "ClickHouse is busy: retry later",  # TOO_MANY_SIMULTANEOUS_QUERIES
    241: "ClickHouse ran out of memory: narrow from..to or retry later",  # MEMORY_LIMIT_EXCEEDED
}

# The shared client may be busy with the batcher's insert for a second or more.
READY_TIMEOUT_S: Final = 10.0

ClientProvider = Callable[[], Client]
Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")
# The tree answers for a partner's subtree as a whole: includeDownline has no meaning there.
TREE_PARAMETERS: Final = ("from", "to", "partnerId", "campaign")


def _json_errors(endpoint: Endpoint) -> Endpoint:
    """Errors as `{"error": {"code", "message"}}`, whichever app mounts these routes."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except InviteError as exc:
            return invite_error_response(exc, NO_STORE)
        except DatabaseError as exc:
            log.exception("analytics query failed")
            return error_response(
                500, "query_failed", f"ClickHouse refused the query (code {exc.code})", NO_STORE
            )

    return guarded


class AnalyticsApi:
    def __init__(
        self,
        settings: Settings,
        client_provider: ClientProvider,
        export_client_factory: ClientProvider,
    ) -> None:
        self._settings = settings
        self._clickhouse_url = settings.analytics.clickhouse_url
        self._auth = ViewerAuth(settings)
        self._revocations = TokenRevocations()
        self._client_provider = client_provider
        self._queries = asyncio.Semaphore(MAX_CONCURRENT_QUERIES)
        # Downloads, closes and months computed again each take a connection of their own.
        self._exports_client = self._open_export_client(export_client_factory)
        self._exports = export.Exports(self._exports_client, self._call)
        # A question's independent parts (its clicks, its events) run side by side.
        self._side = SideParts(self._exports_client, MAX_CONCURRENT_QUERIES)
        weakref.finalize(self, self._side.close)
        self._clickhouse_down = False

    def routes(self) -> list[BaseRoute]:
        portal = Portal(self._settings, self.ask_as)
        return [
            Route("/api/analytics/summary", _json_errors(self.summary), methods=["GET"]),
            Route("/api/analytics/timeseries", _json_errors(self.timeseries), methods=["GET"]),
            Route("/api/analytics/breakdown", _json_errors(self.breakdown), methods=["GET"]),
            Route("/api/analytics/funnel", _json_errors(self.funnel), methods=["GET"]),
            Route("/api/analytics/tree", _json_errors(self.tree), methods=["GET"]),
            Route("/api/analytics/clicks.csv", _json_errors(self.clicks_csv), methods=["GET"]),
            *(Route(route.path, _json_errors(route.endpoint), methods=route.methods)
              for route in CommissionsApi(self._settings, self.ask_as,
                                          self._exports_client).routes()),
            *(Route(route.path, _json_errors(route.endpoint), methods=route.methods)
              for route in Privacy(self._settings, self._call_with_shared_client).routes()),
            *dashboard.routes,
            *(Route(route.path, _json_errors(route.endpoint), methods=route.methods)
              for route in portal.api_routes()),
            *portal.routes(),
        ]

    async def summary(self, request: Request) -> Response:
        viewer, f, _ = self._question(request)

        def question(client: Client) -> dict[str, Any]:
            return answers.summary(client, self._side, f)

        return JSONResponse(await self._ask(viewer, f, question), headers=NO_STORE)

    async def timeseries(self, request: Request) -> Response:
        viewer, f, extra = self._question(request, "interval")
        interval = extra.get("interval", "day")
        queries.check_interval(f, interval)

        def question(client: Client) -> list[dict[str, Any]]:
            return answers.timeseries(client, self._side, f, interval)

        body = {"filter": filter_json(f), "interval": interval,
                "points": await self._ask(viewer, f, question)}
        return JSONResponse(body, headers=NO_STORE)

    async def breakdown(self, request: Request) -> Response:
        viewer, f, extra = self._question(request, "by", "limit")
        if "by" not in extra:
            raise InvalidInput(f"by is required: one of {', '.join(queries.DIMENSIONS)}")
        by = extra["by"]
        queries.dimension_column(by)  # a known dimension, or 400
        limit = parse_limit(extra.get("limit"))

        def question(client: Client) -> list[dict[str, Any]]:
            return answers.breakdown(client, self._side, f, by, limit)

        body = {"filter": filter_json(f), "by": by, "limit": limit,
                "rows": await self._ask(viewer, f, question)}
        return JSONResponse(body, headers=NO_STORE)

    async def funnel(self, request: Request) -> Response:
        viewer, f, extra = self._question(request, "cohort")
        cohort = extra.get("cohort", "clicks")
        if cohort not in funnel_events.COHORTS:
            raise InvalidInput(
                f"cohort {cohort[:20]!r} must be one of {', '.join(funnel_events.COHORTS)}"
            )

        def question(client: Client) -> list[dict[str, Any]]:
            return answers.funnel(client, self._side, f, cohort)

        body = {"filter": filter_json(f), "cohort": cohort,
                "steps": await self._ask(viewer, f, question)}
        return JSONResponse(body, headers=NO_STORE)

    async def tree(self, request: Request) -> Response:
        """The children of `partnerId` (the roots for the admin, the token's own partner for a
        partner), each with its subtree's totals."""
        viewer, f, extra = self._question(request, "limit", filters=TREE_PARAMETERS)
        limit = tree.parse_tree_limit(extra.get("limit"))
        body = await self._ask(viewer, f, lambda client: tree.tree(client, f, limit))
        return JSONResponse(body, headers=NO_STORE)

    async def clicks_csv(self, request: Request) -> Response:
        viewer, f, _ = self._question(request)
        await self._ask(viewer, f, lambda client: None)  # the token and its scope
        return await self._exports.start(f)

    def _question(
        self, request: Request, *extra: str, filters: tuple[str, ...] = FILTER_PARAMETERS
    ) -> tuple[Viewer, ClickFilter, dict[str, str]]:
        viewer = self._auth.viewer(request)
        values = single_values(request.query_params, filters + extra)
        f = parse_filter(values, viewer.partner_id, datetime.now(UTC))
        return viewer, f, {name: values[name] for name in extra if name in values}

    async def _ask(self, viewer: Viewer, f: ClickFilter, question: Callable[[Client], T]) -> T:
        """Run a question on the shared client in a worker thread, after checking the partner
        token (401 when revoked) and its scope (403 for a partner outside its subtree, its
        ancestors included, and for ids nobody knows: a partner learns nothing of others), or
        for the admin that the partner asked about exists (404 unknown_partner)."""

        def scoped(client: Client) -> T:
            self._revocations.check(client, viewer)
            root = viewer.partner_id
            if root is not None and f.partner_id is not None and not partner_scope.in_subtree(
                client, root, f.partner_id
            ):
                raise Forbidden(f"partner {f.partner_id} is not in the subtree of {root}")
            if root is None and f.partner_id is not None:
                names.check_known(client, f.partner_id)
            return question(client)

        async with self._queries:
            return await run_in_threadpool(self._call_with_shared_client, scoped)

    async def ask_as(self, viewer: Viewer, question: Callable[[Client], T]) -> T:
        """Run a question on the shared client in a worker thread, after checking that the
        viewer's partner token was not revoked."""

        def checked(client: Client) -> T:
            self._revocations.check(client, viewer)
            return question(client)

        async with self._queries:
            return await run_in_threadpool(self._call_with_shared_client, checked)

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

    def _open_export_client(self, factory: ClientProvider) -> ClientProvider:
        def open_client() -> Client:
            try:
                return factory()
            except Exception as exc:
                raise self._unavailable(exc) from exc

        return open_client

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
        url = redact_url(self._clickhouse_url)
        if not self._clickhouse_down:  # once per outage, not once per request
            self._clickhouse_down = True
            log.warning("clickhouse unavailable at %s: %s", url, exc)
        return ClickHouseUnavailable(
            f"ClickHouse at {url} did not answer ({type(exc).__name__}): check that it is "
            "running and that INVITE_CLICKHOUSE_URL points at it, then retry"
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
    url = settings.analytics.clickhouse_url
    factory = export_client_factory or (lambda: open_clickhouse(url))
    return AnalyticsApi(settings, client_provider, factory).routes()


def create_analytics_app(settings: Settings, client: Client | ClientProvider) -> Starlette:
    """The app of `invite analytics`: the analytics routes on one shared client, given as is or
    as a provider (one opened in a lifespan). The caller owns the client and closes it."""
    provider: ClientProvider = client if callable(client) else lambda: client

    checks = {"clickhouse": clickhouse_check(provider)}
    lag = batcher_check(settings)
    if lag is not None:
        checks["batcher"] = lag

    async def readyz(request: Request) -> Response:
        return await readiness(checks, timeout_s=READY_TIMEOUT_S)

    async def home(request: Request) -> Response:
        return RedirectResponse("/dashboard", status_code=302)

    return Starlette(
        routes=[
            Route("/", home),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *create_analytics_routes(settings, provider),
            *analytics_docs_routes(),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )
