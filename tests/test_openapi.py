"""The API description: valid OpenAPI 3.1, served by each app at /openapi.json, and exactly the
routes that app serves (a route added without its description fails here)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from analytics.all_in_one import create_all_in_one_app, create_analytics_only_app
from edge.app import EdgeApp, Extension, create_app
from edge.config import Settings
from tests.conftest import make_settings

# Routes that are no operation of their own.
UNDESCRIBED = {
    "/portal/{rest}": "the portal's 'no such page' for any other path under /portal",
}
CONVERTER = re.compile(r"\{(\w+):\w+\}")
App = EdgeApp | Starlette


def settings_for(tmp_path: Path) -> Settings:
    # Built only, never started: nothing connects to Redis or opens the engine.
    return make_settings(tmp_path, "redis://127.0.0.1:1/0",
                         INVITE_CLICKHOUSE_URL=f"chdb://{tmp_path / 'clickhouse'}")


APPS: dict[str, Callable[[Settings], App]] = {
    "invite edge": create_app,
    "invite run": create_all_in_one_app,
    "invite analytics": create_analytics_only_app,
}


def served(app: App) -> set[tuple[str, str]]:
    """(path, METHOD) of every route the app answers, as the description writes paths; the HEAD
    Starlette adds to each GET is the GET's."""
    routes: list[BaseRoute] = list(app.rest.routes if isinstance(app, EdgeApp) else app.routes)
    found: set[tuple[str, str]] = set()
    for route in routes:
        assert isinstance(route, Route), f"{route!r}: describe what it mounts"
        path = CONVERTER.sub(r"{\1}", route.path)
        if path in UNDESCRIBED:
            continue
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")
        found.update((path, method) for method in methods)
    if isinstance(app, EdgeApp):
        found.update((path, method) for path, methods in app.FRONT_ROUTES for method in methods)
    return found


def fetch(app: App, path: str) -> httpx.Response:
    """A request to the app in this process (no lifespan: the route needs no store)."""

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client:
            return await client.get(path)

    return asyncio.run(get())


def described(app: App) -> dict[str, Any]:
    response = fetch(app, "/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, methods in document["paths"].items()
            for method in methods}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[App, dict[str, Any]]]:
    """Each app, built once, with the description it serves."""
    found = {}
    for kind, factory in APPS.items():
        app = factory(settings_for(tmp_path_factory.mktemp("app")))
        found[kind] = (app, described(app))
    return found


@pytest.mark.parametrize("kind", sorted(APPS))
def test_each_app_serves_a_valid_openapi_3_1_description(
    built: dict[str, tuple[App, dict[str, Any]]], kind: str
) -> None:
    _, document = built[kind]

    validate(document)
    assert document["openapi"] == "3.1.0"


@pytest.mark.parametrize("kind", sorted(APPS))
def test_the_description_lists_exactly_the_routes_the_app_serves(
    built: dict[str, tuple[App, dict[str, Any]]], kind: str
) -> None:
    app, document = built[kind]

    assert {"missing": served(app) - operations(document),
            "not served": operations(document) - served(app)} == {"missing": set(),
                                                                  "not served": set()}


def test_a_route_added_without_its_description_is_reported(tmp_path: Path) -> None:
    async def shiny(request: object) -> Response:
        return Response("new")

    app = create_app(settings_for(tmp_path), Extension(routes=[
        Route("/api/shiny/{item_id:int}", shiny, methods=["POST"])]))

    assert served(app) - operations(described(app)) == {("/api/shiny/{item_id}", "POST")}


def test_every_operation_names_its_answers_and_every_path_parameter(
    built: dict[str, tuple[App, dict[str, Any]]],
) -> None:
    _, document = built["invite run"]

    for path, methods in document["paths"].items():
        for method, described_operation in methods.items():
            where = f"{method.upper()} {path}"
            assert described_operation["responses"], where
            assert described_operation["summary"], where
            named = {p["name"] for p in described_operation.get("parameters", ())
                     if p["in"] == "path"}
            assert named == set(re.findall(r"\{(\w+)\}", path)), where


def test_the_edge_alone_describes_no_analytics_route(
    built: dict[str, tuple[App, dict[str, Any]]],
) -> None:
    paths = built["invite edge"][1]["paths"]

    assert "/api/analytics/summary" not in paths
    assert {"/r/{code}", "/attribution", "/docs", "/openapi.json", "/healthz"} <= set(paths)


def test_every_example_body_keeps_to_its_schema(
    built: dict[str, tuple[App, dict[str, Any]]],
) -> None:
    document = built["invite run"][1]
    examples = 0
    for path, methods in document["paths"].items():
        for method, described_operation in methods.items():
            content = described_operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                if "example" in media:
                    # "#/components/…" resolves against the root: give it the components.
                    schema = {**media["schema"], "components": document["components"]}
                    errors = list(Draft202012Validator(schema).iter_errors(media["example"]))
                    assert errors == [], f"{method.upper()} {path}: {errors[0].message}"
                    examples += 1

    assert examples > 0
