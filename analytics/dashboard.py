"""The marketing dashboard: one page and its assets, served by the app under a strict CSP."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from edge.web import error_response

DASHBOARD_DIR: Final = Path(__file__).parent / "dashboard"
DASHBOARD_ASSETS: Final = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
DASHBOARD_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


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
        return error_response(404, "not_found", f"no dashboard asset {asset[:40]!r}")
    return FileResponse(
        DASHBOARD_DIR / asset, media_type=media_type, headers={"Cache-Control": "no-cache"}
    )


routes = [
    Route("/dashboard", dashboard_page, methods=["GET"]),
    Route("/dashboard/{asset}", dashboard_asset, methods=["GET"]),
]
