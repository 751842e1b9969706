"""The description of the analytics routes (`create_analytics_routes`: what `invite run` adds to
the edge), and of the app of `invite analytics` that serves them alone."""

from __future__ import annotations

from typing import Final

from starlette.routing import Route

from analytics.description.commissions import COMMISSIONS
from analytics.description.pages import HOME, PAGES
from analytics.description.questions import QUESTIONS
from edge.docs import DOCS, docs_routes
from edge.openapi import HEALTH, Description, document

ANALYTICS: Final[Description] = QUESTIONS + COMMISSIONS + PAGES
ANALYTICS_APP: Final[Description] = ANALYTICS + HEALTH + HOME


def analytics_docs_routes() -> list[Route]:
    """/openapi.json and /docs of `invite analytics`."""
    return docs_routes(document(
        ANALYTICS_APP + DOCS, title="invite-edge analytics",
        summary="Analytics, commissions, the dashboard and the partner portal"))


__all__ = ["ANALYTICS", "ANALYTICS_APP", "analytics_docs_routes"]
