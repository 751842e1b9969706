"""The marketing dashboard: one page, its assets and its charting library, served by the app under
a strict CSP (brokers run it in private networks: nothing is fetched from elsewhere)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from edge.web import Asset, asset_response, error_response, package_path

DASHBOARD_DIR: Final = Path(__file__).parent / "dashboard"
DASHBOARD_ASSETS: Final = {
    "dashboard.js": "text/javascript", "period.js": "text/javascript",
    "tables.js": "text/javascript", "dashboard.css": "text/css",
}
# Scripts only from this app. Styles also inline: plotly.js sets style attributes and rules as
# it draws (it reports every blocked one as a console error); no script can come in that way.
DASHBOARD_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
# plotly.js as the `plotly` package from PyPI ships it (the analytics extra installs it).
CHART_LIBRARY: Final = ("plotly", "package_data/plotly.min.js")
CHART_LIBRARY_CACHE: Final = "public, max-age=86400"


def chart_library_path() -> Path | None:
    found = package_path(*CHART_LIBRARY)
    return found if found is not None and found.is_file() else None


@cache
def chart_library() -> Asset | None:
    """plotly.min.js read once and gzipped once (4.8 MB, 1.4 MB gzipped: phones care)."""
    path = chart_library_path()
    if path is None:
        return None
    return Asset.of(path.read_bytes(), "text/javascript")


async def dashboard_page(request: Request) -> Response:
    return FileResponse(
        DASHBOARD_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": DASHBOARD_CSP, "Cache-Control": "no-cache"},
    )


async def dashboard_asset(request: Request) -> Response:
    asset = request.path_params["asset"]
    if asset == "plotly.min.js":
        return await _chart_library(request)
    media_type = DASHBOARD_ASSETS.get(asset)
    if media_type is None:
        return error_response(404, "not_found", f"no dashboard asset {asset[:40]!r}")
    return FileResponse(
        DASHBOARD_DIR / asset, media_type=media_type, headers={"Cache-Control": "no-cache"}
    )


async def _chart_library(request: Request) -> Response:
    library = await run_in_threadpool(chart_library)  # read and gzipped once, off the loop
    if library is None:
        return error_response(
            404, "not_found",
            "the charting library is not installed: pip install 'invite-edge[analytics]' "
            "(it brings the plotly package, which ships plotly.min.js)",
        )
    return asset_response(request, library, {"Cache-Control": CHART_LIBRARY_CACHE})


routes = [
    Route("/dashboard", dashboard_page, methods=["GET"]),
    Route("/dashboard/{asset}", dashboard_asset, methods=["GET"]),
]
