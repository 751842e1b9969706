"""`GET /openapi.json` (the app's OpenAPI 3.1 description) and `GET /docs`, which renders it with
Swagger UI's files as the `swagger-ui-py` package ships them, served by the app itself (brokers
run this in private networks: nothing comes from a CDN)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Final

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from edge.openapi import (
    HTML,
    JSON,
    Description,
    answer,
    choice,
    errors,
    in_path,
    json_answer,
    operation,
)
from edge.web import Asset, asset_response, error_response, package_path

# Swagger UI 5 (it reads OpenAPI 3.1) from PyPI's swagger-ui-py: its static/ folder.
VIEWER_PACKAGE: Final = ("swagger_ui", "static")
VIEWER_FILES: Final = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
INITIALIZER: Final = "docs.js"
VIEWER_CACHE: Final = "public, max-age=86400"
# Scripts only from this app; Swagger UI sets style attributes as it draws.
DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# No inline script under that CSP: the page loads this from /docs/docs.js.
INITIALIZER_JS: Final = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    tryItOutEnabled: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} API</title>
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"><noscript>This page needs JavaScript; the description itself is
<a href="/openapi.json">/openapi.json</a>.</noscript></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs.js"></script>
</body>
</html>
"""


def viewer_dir() -> Path | None:
    found = package_path(*VIEWER_PACKAGE)
    return found if found is not None and found.is_dir() else None


@cache
def asset(name: str) -> Asset | None:
    """A viewer file read and gzipped once (the bundle is 1.5 MB, 0.4 MB gzipped)."""
    if name == INITIALIZER:
        body, media_type = INITIALIZER_JS, "text/javascript"
    else:
        folder = viewer_dir()
        media_type = VIEWER_FILES.get(name, "")
        if folder is None or not media_type or not (folder / name).is_file():
            return None
        body = (folder / name).read_bytes()
    return Asset.of(body, media_type)


def docs_routes(openapi: dict[str, Any]) -> list[Route]:
    """The routes serving `openapi` (edge.openapi.document) and the page that renders it."""
    body = orjson.dumps(openapi)
    page = PAGE.format(title=openapi["info"]["title"])

    async def openapi_json(request: Request) -> Response:
        return Response(body, media_type=JSON, headers={"Cache-Control": "no-cache"})

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP,
                                           "Cache-Control": "no-cache",
                                           "X-Content-Type-Options": "nosniff"})

    return [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Route("/docs/{asset}", docs_asset, methods=["GET"]),
    ]


async def docs_asset(request: Request) -> Response:
    name = request.path_params["asset"]
    found = await run_in_threadpool(asset, name) if name in (*VIEWER_FILES, INITIALIZER) else None
    if found is None:
        return error_response(404, "not_found", f"no /docs file {name[:40]!r}: the viewer's "
                              "files come with the swagger-ui-py package (pip install -e .)")
    return asset_response(request, found, {"Cache-Control": VIEWER_CACHE,
                                           "X-Content-Type-Options": "nosniff"})


DOCS: Final = Description(
    paths={
        "/openapi.json": {"get": operation(
            "This description", tag="docs",
            description="OpenAPI 3.1: every route this app serves.",
            answers={200: json_answer("the description", {"type": "object"})},
        )},
        "/docs": {"get": operation(
            "This description, rendered", tag="docs",
            description="Swagger UI, served by the app itself.",
            answers={200: answer("the page", {HTML: {"type": "string"}})},
        )},
        "/docs/{asset}": {"get": operation(
            "The viewer's files", tag="docs",
            parameters=[in_path("asset", choice([*VIEWER_FILES, INITIALIZER]), "a file name")],
            answers={
                200: answer("the file (gzipped when the client takes it)", {
                    "text/javascript": {"type": "string"}, "text/css": {"type": "string"},
                    "image/png": {"type": "string", "contentMediaType": "image/png"},
                }, headers={"ETag": "changes with the file"}),
                304: answer("not changed since the ETag in If-None-Match"),
                **errors(404),
            },
        )},
    },
    tags={"docs": "This description: JSON and rendered"},
)
