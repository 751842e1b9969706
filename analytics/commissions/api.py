"""The commissions routes: plans (admin), the ledger's lines (admin, or a partner token for its
own), periods (admin) and statements (admin, or the partner's own token)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from clickhouse_connect.driver.client import Client
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from analytics import names
from analytics.auth import Viewer, ViewerAuth
from analytics.commissions import reads, statements
from analytics.commissions.months import check_period
from analytics.commissions.periods import Periods
from analytics.commissions.plans import PlanInvalid, parse_terms
from analytics.commissions.reads import KINDS, LineFilter
from analytics.commissions.store import CommissionStore, PeriodState, in_force
from analytics.filters import EARLIEST, LATEST, parse_flag, parse_instant, single_values
from edge.clock import now_ms
from edge.config import Settings
from edge.errors import Forbidden, InvalidInput, NotFound, Unavailable
from edge.exact_json import loads
from edge.redis_client import open_redis
from edge.registry.model import PARTNER_ID_PATTERN, PLAN_ID_PATTERN
from edge.spelling import is_ascii_digits
from edge.web import NO_STORE, read_body

T = TypeVar("T")
Ask = Callable[[Viewer, Callable[[Client], Any]], Awaitable[Any]]
ClientFactory = Callable[[], Client]
LINE_PARAMETERS: Final = ("from", "to", "partnerId", "includeDownline", "kind", "period",
                          "limit", "cursor")
REDIS_TIMEOUT_S: Final = 10.0
MAX_PLAN_BYTES: Final = 64 * 1024
STATEMENT_FORMATS: Final = {"": "json", ".json": "json", ".csv": "csv", ".pdf": "pdf"}
EARLIEST_MS: Final = int(EARLIEST.timestamp() * 1000)
LATEST_MS: Final = int(LATEST.timestamp() * 1000)


class CommissionsApi:
    def __init__(self, settings: Settings, ask: Ask, open_client: ClientFactory) -> None:
        self._settings = settings
        self._auth = ViewerAuth(settings)
        self._ask = ask
        self._open_client = open_client
        self._currency = settings.currency

    def routes(self) -> list[Route]:
        return [
            Route("/api/plans", self.list_plans, methods=["GET"]),
            Route("/api/plans/{plan_id}", self.put_plan, methods=["PUT"]),
            Route("/api/plans/{plan_id}", self.get_plan, methods=["GET"]),
            Route("/api/commissions", self.lines, methods=["GET"]),
            Route("/api/commissions.csv", self.lines_csv, methods=["GET"]),
            Route("/api/periods", self.list_periods, methods=["GET"]),
            Route("/api/periods/{period}/close", self.close, methods=["POST"]),
            Route("/api/periods/{period}/paid", self.paid, methods=["POST"]),
            Route("/api/periods/{period}/recompute", self.recompute, methods=["POST"]),
            Route("/api/statements/{partner_id}/{period}", self.statement, methods=["GET"]),
        ]

    @contextlib.asynccontextmanager
    async def _redis(self) -> AsyncIterator[Redis]:
        if not self._settings.redis_url:
            raise Unavailable("INVITE_REDIS_URL is not set: plans and periods live in Redis")
        client = open_redis(self._settings.redis_url, timeout_s=REDIS_TIMEOUT_S)
        try:
            yield client
        finally:
            await client.aclose()

    def _admin(self, request: Request) -> Viewer:
        viewer = self._auth.viewer(request)
        if not viewer.is_admin:
            raise Forbidden("this route takes the admin token")
        return viewer

    # Plans.

    async def put_plan(self, request: Request) -> Response:
        self._admin(request)
        plan_id = _plan_id(request.path_params["plan_id"])
        raw = await read_body(request, MAX_PLAN_BYTES)
        try:
            body = loads(raw) if raw.strip() else None
        except ValueError:
            raise InvalidInput("body is not valid JSON") from None
        if not isinstance(body, dict):
            raise PlanInvalid("", "send the plan as a JSON object (name, effectiveFrom, cpa, "
                                  "rebates, revenueShare, levels, tiers)")
        terms = parse_terms(body, plan_id)
        effective = body.get("effectiveFrom")
        start = None if effective is None else _moment("effectiveFrom", effective)
        async with self._redis() as redis:
            version, created = await CommissionStore(redis).add_version(plan_id, terms, start)
        return JSONResponse(version.to_json(), status_code=201 if created else 200,
                            headers=NO_STORE)

    async def get_plan(self, request: Request) -> Response:
        self._admin(request)
        plan_id = _plan_id(request.path_params["plan_id"])
        values = single_values(request.query_params, ("at",))
        at = _moment("at", values["at"]) if "at" in values else now_ms()
        async with self._redis() as redis:
            versions = await CommissionStore(redis).versions(plan_id)
        if not versions:
            raise NotFound(f"plan {plan_id!r} does not exist: create it with PUT /api/plans/"
                           f"{plan_id}")
        version = in_force(versions, at)
        if version is None:
            first = min(v.effective_from for v in versions)
            raise NotFound(f"no version of plan {plan_id!r} is in force at that time; its "
                           f"first starts at {datetime.fromtimestamp(first / 1000, UTC)}")
        return JSONResponse({**version.to_json(), "versions": len(versions)}, headers=NO_STORE)

    async def list_plans(self, request: Request) -> Response:
        self._admin(request)
        single_values(request.query_params, ())
        async with self._redis() as redis:
            plans = await CommissionStore(redis).all_versions()
        now = now_ms()
        body = [{"planId": plan_id, "current": (v.to_json() if (v := in_force(versions, now))
                                                 else None),
                 "versions": [version.to_json() for version in versions]}
                for plan_id, versions in plans.items()]
        return JSONResponse({"plans": body}, headers=NO_STORE)

    # The ledger's lines.

    def _line_filter(self, request: Request, viewer: Viewer,
                     extra: tuple[str, ...] = ()) -> tuple[LineFilter, dict[str, str]]:
        values = single_values(request.query_params, LINE_PARAMETERS + extra)
        partner_id = values.get("partnerId") or None
        if partner_id is not None and not PARTNER_ID_PATTERN.fullmatch(partner_id):
            raise InvalidInput(f"partnerId {partner_id[:80]!r} is not a partner id")
        downline = parse_flag("includeDownline", values.get("includeDownline", ""))
        if viewer.partner_id is not None:
            if partner_id not in (None, viewer.partner_id) or downline:
                raise Forbidden("a partner token sees only the lines its own partner earns")
            partner_id = viewer.partner_id
        kind = values.get("kind") or None
        if kind is not None and kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
        period = check_period(values["period"]) if values.get("period") else None
        start = parse_instant("from", values["from"], False) if "from" in values else None
        end = parse_instant("to", values["to"], True) if "to" in values else None
        if start is not None and end is not None and start >= end:
            raise InvalidInput("from must be before to")
        return LineFilter(
            start_ms=None if start is None else int(start.timestamp() * 1000),
            end_ms=None if end is None else int(end.timestamp() * 1000),
            partner_id=partner_id, include_downline=downline, kind=kind, period=period,
        ), values

    async def lines(self, request: Request) -> Response:
        viewer = self._auth.viewer(request)
        f, values = self._line_filter(request, viewer)
        limit = _limit(values.get("limit"))
        after = reads.decode_cursor(values["cursor"]) if values.get("cursor") else None

        def question(client: Client) -> dict[str, Any]:
            _known(client, viewer, f.partner_id)
            rows, cursor = reads.page(client, f, limit, after)
            return {"lines": [reads.line_json(row) for row in rows], "nextCursor": cursor,
                    "totals": reads.totals(client, f), "currency": self._currency}

        return JSONResponse(await self._ask(viewer, question), headers=NO_STORE)

    async def lines_csv(self, request: Request) -> Response:
        viewer = self._auth.viewer(request)
        f, _ = self._line_filter(request, viewer)
        await self._ask(viewer, lambda client: _known(client, viewer, f.partner_id))
        client = self._open_client()  # its own: the download may outlast other questions

        def chunks() -> Any:
            try:
                yield from statements.csv_rows(reads.all_lines(client, f))
            finally:
                client.close()

        return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers={
            **NO_STORE, "Content-Disposition": 'attachment; filename="commissions.csv"'})

    # Periods.

    async def list_periods(self, request: Request) -> Response:
        self._admin(request)
        single_values(request.query_params, ())
        async with self._redis() as redis:
            states = await CommissionStore(redis).periods()
        return JSONResponse({"periods": [state.to_json() for _, state in sorted(states.items())]},
                            headers=NO_STORE)

    async def close(self, request: Request) -> Response:
        self._admin(request)
        period = check_period(request.path_params["period"])
        async with self._redis() as redis:
            body = await Periods(redis, self._open_client, self._currency).close(period)
        return JSONResponse(body, headers=NO_STORE)

    async def paid(self, request: Request) -> Response:
        self._admin(request)
        period = check_period(request.path_params["period"])
        raw = await read_body(request)
        try:
            body = loads(raw) if raw.strip() else {}
        except ValueError:
            raise InvalidInput("body is not valid JSON") from None
        if not isinstance(body, dict) or set(body) - {"reference"}:
            raise InvalidInput('send {"reference": "…"} (the payout\'s reference)')
        async with self._redis() as redis:
            state = await Periods(redis, self._open_client, self._currency).paid(
                period, body.get("reference"))
        return JSONResponse(state, headers=NO_STORE)

    async def recompute(self, request: Request) -> Response:
        self._admin(request)
        period = check_period(request.path_params["period"])
        async with self._redis() as redis:
            report = await Periods(redis, self._open_client, self._currency).recompute(period)
        return JSONResponse({"period": period, "computed": report.months,
                             "usersUpdated": report.users}, headers=NO_STORE)

    # Statements.

    async def statement(self, request: Request) -> Response:
        viewer = self._auth.viewer(request)
        single_values(request.query_params, ())
        partner_id = request.path_params["partner_id"]
        raw_period = request.path_params["period"]
        period, dot, suffix = raw_period.partition(".")
        shape = STATEMENT_FORMATS.get(dot + suffix)
        if shape is None:
            raise NotFound("statements come as .json, .csv or .pdf")
        check_period(period)
        if not PARTNER_ID_PATTERN.fullmatch(partner_id):
            raise InvalidInput(f"partnerId {partner_id[:80]!r} is not a partner id")
        if viewer.partner_id is not None and viewer.partner_id != partner_id:
            raise Forbidden("a partner token reads only its own partner's statements")
        async with self._redis() as redis:
            state = (await CommissionStore(redis).periods()).get(period) or PeriodState(
                period, "open")
        if shape == "csv":
            await self._ask(viewer, lambda client: _known(client, viewer, partner_id))
            client = self._open_client()

            def chunks() -> Any:
                try:
                    yield from statements.csv_rows(reads.all_lines(
                        client, LineFilter(partner_id=partner_id, period=period)))
                finally:
                    client.close()

            return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers={
                **NO_STORE, "Content-Disposition":
                f'attachment; filename="statement-{partner_id}-{period}.csv"'})

        def question(client: Client) -> dict[str, Any]:
            _known(client, viewer, partner_id)
            name = names.names(client, [partner_id]).get(partner_id) or None
            return statements.statement(client, partner_id, name, period, state,
                                        self._currency)

        body = await self._ask(viewer, question)
        if shape == "pdf":
            return Response(statements.pdf(body), media_type="application/pdf", headers={
                **NO_STORE, "Content-Disposition":
                f'inline; filename="statement-{partner_id}-{period}.pdf"'})
        return JSONResponse(body, headers=NO_STORE)


def _known(client: Client, viewer: Viewer, partner_id: str | None) -> None:
    if viewer.is_admin and partner_id is not None:
        names.check_known(client, partner_id)


def _plan_id(raw: str) -> str:
    if not PLAN_ID_PATTERN.fullmatch(raw):
        raise InvalidInput(f"planId {raw[:80]!r} must be 1-64 characters of letters, digits and "
                           "._:@- starting with a letter or digit")
    return raw


def _moment(name: str, value: Any) -> int:
    """ms since the epoch of an ISO 8601 date or date-time (UTC unless a zone is given), or of
    a whole number of ms, from 2000 to 2200."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be an ISO 8601 date-time or ms since the epoch")
    if is_ascii_digits(value):
        if not EARLIEST_MS <= int(value) <= LATEST_MS:
            raise InvalidInput(f"{name} must be from 2000 to 2200")
        return int(value)
    return int(parse_instant(name, value, False).timestamp() * 1000)


def _limit(raw: str | None) -> int:
    if raw is None:
        return reads.DEFAULT_LIMIT
    if not is_ascii_digits(raw) or not 1 <= int(raw) <= reads.MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {reads.MAX_LIMIT}")
    return int(raw)

