"""The session partner's monthly statements, as JSON, CSV or PDF: only its own, only for months
it has lines in (any other month, or anything else in the path, is a 404)."""

from __future__ import annotations

from typing import Any, Final

from clickhouse_connect.driver.client import Client
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from analytics.commissions import reads, statements
from analytics.commissions.months import check_period
from analytics.commissions.reads import LineFilter
from analytics.commissions.store import CommissionStore, PeriodState
from analytics.portal import questions
from analytics.portal.access import Visit
from analytics.portal.pages import Ask
from analytics.portal.web import HEADERS
from edge.errors import InvalidInput, NotFound

FORMATS: Final = {"json": "application/json", "csv": "text/csv; charset=utf-8",
                  "pdf": "application/pdf"}


class Statements:
    def __init__(self, ask: Ask, currency: str) -> None:
        self._ask = ask
        self._currency = currency

    async def statement(self, visit: Visit) -> Response:
        name = visit.request.path_params["name"]
        period, _, shape = name.partition(".")
        try:
            check_period(period)
        except InvalidInput:
            raise NotFound(f"no statement {name[:40]!r}") from None
        if shape not in FORMATS:
            raise NotFound("statements come as .json, .csv or .pdf")
        partner_id = visit.partner_id
        state = (await CommissionStore(visit.redis).periods()).get(period) or PeriodState(
            period, "open")

        def question(client: Client) -> dict[str, Any] | bytes | None:
            if not questions.has_lines(client, partner_id, period):
                return None
            if shape == "csv":
                return b"".join(statements.csv_rows(reads.all_lines(
                    client, LineFilter(partner_id=partner_id, period=period))))
            return statements.statement(client, partner_id, visit.partner.name, period, state,
                                        self._currency)

        body = await self._ask(question)
        if body is None:
            raise NotFound(f"you have no commission lines in {period}")
        filename = f"statement-{partner_id}-{period}.{shape}"
        headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'}
        if isinstance(body, bytes):
            return Response(body, media_type=FORMATS["csv"], headers=headers)
        if shape == "pdf":
            document = await run_in_threadpool(statements.pdf, body)
            return Response(document, media_type=FORMATS["pdf"], headers=headers)
        return JSONResponse(body, headers=headers)
