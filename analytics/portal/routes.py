"""The partner portal's routes, for the app serving analytics (`invite run`, `invite analytics`).

`ask` runs a ClickHouse question in a worker thread on the process's shared client (AnalyticsApi's
`ask_as`, as the admin viewer: the portal's session was checked against the registry before, and
its questions name their partner and scope themselves)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from analytics.auth import Viewer
from analytics.portal.access import Access
from analytics.portal.pages import Pages
from analytics.portal.signing_in import SigningIn
from analytics.portal.statements import Statements
from analytics.portal.web import notice, static_file
from edge.config import Settings

T = TypeVar("T")
AskAs = Callable[[Viewer, Callable[[Client], Any]], Awaitable[Any]]
QUESTIONS_VIEWER = Viewer(partner_id=None)


class Portal:
    def __init__(self, settings: Settings, ask_as: AskAs) -> None:
        self._access = Access(settings)
        self._ask_as = ask_as
        self._signing_in = SigningIn(self._access)
        self._pages = Pages(self._ask, settings.currency)
        self._statements = Statements(self._ask, settings.currency)

    async def _ask(self, question: Callable[[Client], T]) -> T:
        answer: T = await self._ask_as(QUESTIONS_VIEWER, question)
        return answer

    def api_routes(self) -> list[Route]:
        """The admin's route (JSON errors, like every /api route)."""
        return [Route("/api/partners/{partner_id}/portal-link", self._signing_in.issue_link,
                      methods=["POST"])]

    def routes(self) -> list[BaseRoute]:
        signed_in, public = self._access.signed_in, self._access.public
        pages = self._pages
        return [
            Route("/portal", signed_in(pages.overview), methods=["GET"]),
            Route("/portal/signin", public(self._signing_in.signin_page), methods=["GET"]),
            Route("/portal/signin", public(self._signing_in.signin), methods=["POST"]),
            Route("/portal/signout", public(self._signing_in.signout), methods=["POST"]),
            Route("/portal/links", signed_in(pages.links), methods=["GET"]),
            Route("/portal/links", signed_in(pages.create_link), methods=["POST"]),
            Route("/portal/links/{code}/qr.svg", signed_in(pages.qr_svg), methods=["GET"]),
            Route("/portal/links/{code}/qr.png", signed_in(pages.qr_png), methods=["GET"]),
            Route("/portal/downline", signed_in(pages.downline), methods=["GET"]),
            Route("/portal/commissions", signed_in(pages.commissions), methods=["GET"]),
            Route("/portal/statements/{name}", signed_in(self._statements.statement),
                  methods=["GET"]),
            Route("/portal/static/{asset}", static_file, methods=["GET"]),
            Route("/portal/{rest:path}", public(_not_found)),
        ]


async def _not_found(request: Request) -> Response:
    return notice(request, 404, "Not found", "There is no such page in the portal.",
                  code="not_found", action=("/portal", "Back to the overview"))
