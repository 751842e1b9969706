"""Both apps that serve analytics serve the portal: `invite run` (the edge with analytics in one
process) and `invite analytics`."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.routing import Route

from analytics.all_in_one import create_all_in_one_app, create_analytics_only_app
from tests.conftest import make_settings

PORTAL_ROUTES = {("/api/partners/{partner_id}/portal-link", "POST"), ("/portal", "GET"),
                 ("/portal/signin", "POST"), ("/portal/links", "POST"),
                 ("/portal/statements/{name}", "GET")}


def served(routes: list[object]) -> set[tuple[str, str]]:
    return {(route.path, method) for route in routes if isinstance(route, Route)
            for method in route.methods or ()}


@pytest.mark.parametrize("kind", ["invite run", "invite analytics"])
def test_the_portal_is_served_by_both_apps(tmp_path: Path, kind: str) -> None:
    settings = make_settings(tmp_path, "redis://127.0.0.1:1/0",
                             INVITE_CLICKHOUSE_URL=f"chdb://{tmp_path / 'clickhouse'}")
    # Built only (no lifespan): nothing connects to Redis or opens the engine.
    if kind == "invite run":
        routes = create_all_in_one_app(settings).rest.routes
    else:
        routes = create_analytics_only_app(settings).routes

    assert served(list(routes)) >= PORTAL_ROUTES
