"""How the portal answers: pages rendered from autoescaped Jinja2 templates under a strict CSP,
the same headers on every answer, people's errors as pages (JSON for API clients), forms read
within a limit, and the portal's static files."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, quote

import jinja2
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from analytics.events.queries import quantity
from edge.errors import BadRequest, InviteError
from edge.web import error_response, read_body

PORTAL_DIR: Final = Path(__file__).parent
STATIC: Final = {"portal.css": "text/css", "portal.js": "text/javascript"}
# Nothing from elsewhere, no inline script, forms post only here, never framed.
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The overview's chart: plotly.js sets style attributes as it draws (scripts stay 'self' only).
CHART_CSP: Final = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
HEADERS: Final = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # sign-in URLs carry their token
    "X-Frame-Options": "DENY",
}
MAX_FORM_BYTES: Final = 16 * 1024
MAX_FORM_FIELDS: Final = 20
FORM_TYPE: Final = "application/x-www-form-urlencoded"


def _number(value: int | Decimal) -> str:
    return f"{value:,}"


def _money(value: Decimal | str) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01')):,}"


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PORTAL_DIR / "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters.update(number=_number, money=_money, percent=_percent, lots=quantity,
                               url=lambda text: quote(str(text), safe=""))
    return environment


TEMPLATES: Final = _environment()


def page(name: str, context: Mapping[str, Any], status: int = 200, *, csp: str = CSP,
         headers: Mapping[str, str] | None = None) -> HTMLResponse:
    body = TEMPLATES.get_template(name).render(**context)
    return HTMLResponse(body, status_code=status,
                        headers={**HEADERS, "Content-Security-Policy": csp, **(headers or {})})


def wants_html(request: Request) -> bool:
    """A browser's navigation asks for text/html; API clients and curl get JSON errors."""
    return "text/html" in request.headers.get("accept", "")


def notice(request: Request, status: int, title: str, message: str, *,
           code: str = "portal", action: tuple[str, str] | None = None,
           headers: Mapping[str, str] | None = None) -> Response:
    """An answer that is not the page asked for: a page saying what happened and what to do,
    or the JSON error for clients that do not ask for HTML."""
    if not wants_html(request):
        return error_response(status, code, message, {**HEADERS, **(headers or {})})
    return page("notice.html", {"title": title, "message": message, "action": action},
                status, headers=headers)


def error_notice(request: Request, error: InviteError) -> Response:
    titles = {404: "Not found", 403: "Not allowed", 409: "Not possible now",
              413: "Too large", 422: "Check what you entered", 503: "Unavailable right now"}
    return notice(request, error.status, titles.get(error.status, "Something went wrong"),
                  error.message, code=error.code, action=("/portal", "Back to the overview"))


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first of a repeated one). A body of another type has no
    fields (so no CSRF token either: a 403); BadRequest for a malformed form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await read_body(request, MAX_FORM_BYTES)
    if content_type != FORM_TYPE:
        return {}
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=False,
                          encoding="utf-8", errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(
            f"the form is not valid {FORM_TYPE} of at most {MAX_FORM_FIELDS} fields") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def query_value(request: Request, name: str) -> str | None:
    """A query parameter people's pages read (others, such as a chat app's tracking
    parameters, are ignored); None when absent or empty."""
    return request.query_params.get(name) or None


async def static_file(request: Request) -> Response:
    asset = request.path_params["asset"]
    media_type = STATIC.get(asset)
    if media_type is None:
        return error_response(404, "not_found", f"no portal asset {asset[:40]!r}", HEADERS)
    return FileResponse(PORTAL_DIR / "static" / asset, media_type=media_type,
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
