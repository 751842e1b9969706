"""The description of the pages people use: the marketing dashboard (analytics/dashboard.py) and
the partner portal with the admin's sign-in link (analytics/portal/routes.py)."""

from __future__ import annotations

from typing import Final

from analytics.dashboard import DASHBOARD_ASSETS
from analytics.description.commissions import PERIOD, PERIOD_PATTERN
from analytics.description.questions import PARTNER_ID
from analytics.portal.ranges import PRESETS
from analytics.portal.sessions import COOKIE
from analytics.portal.web import FORM_TYPE, MAX_FORM_BYTES, STATIC
from edge.openapi import (
    ADMIN,
    CSV,
    HTML,
    JSON,
    Answer,
    Description,
    Operation,
    Parameter,
    Schema,
    Security,
    answer,
    answer_object,
    choice,
    errors,
    in_path,
    json_answer,
    operation,
    or_empty,
    query,
    ref,
    text,
)

TAG: Final = "pages"
PORTAL_TAG: Final = "partner portal"
SESSION: Final[Security] = [{"portalSession": []}]
PAGE: Final = answer("the page", {HTML: {"type": "string"}})
CODE: Final = in_path("code", text("^[A-Za-z0-9_-]{1,64}$"), "one of the partner's own links")
RANGE: Final = query("range", or_empty(choice(PRESETS)), "the figures' period (default 30d)")
CURSOR: Final = query("cursor", text(max_length=200), "where the next page starts")
SEE_OTHER: Final = answer("done: on to the next page", headers={"Location": "where to"})
IMAGE: Final[Schema] = {"type": "string"}


def page_errors(*statuses: int) -> dict[int | str, Answer]:
    """A browser (Accept: text/html) gets a page saying what happened; other clients the JSON
    error."""
    return {status: answer(_why(status), {JSON: ref("Error"), HTML: {"type": "string"}})
            for status in statuses}


def _why(status: int) -> str:
    return {400: "the sign-in link or form is damaged", 401: "not signed in (or signed out)",
            403: "the form did not carry this session's token", 404: "no such page or link",
            410: "the sign-in link expired or was used", 413: "the form is too large",
            422: "a value broke a rule", 503: "the portal's store did not answer"}[status]


def portal(summary: str, *, parameters: list[Parameter] | None = None,
           answers: dict[int | str, Answer] | None = None, form: Schema | None = None,
           session: bool = True, statuses: tuple[int, ...] = (401, 422, 503)) -> Operation:
    return operation(
        summary, tag=PORTAL_TAG, security=SESSION if session else None,
        parameters=parameters or [], body={FORM_TYPE: form} if form is not None else None,
        body_required=False,
        answers={**(answers or {200: PAGE}), **page_errors(*statuses)})


def form(**fields: Schema) -> Schema:
    return {"type": "object", "properties": fields,
            "description": f"at most {MAX_FORM_BYTES} bytes; other fields are ignored"}


CSRF: Final = text(description="the session's CSRF token, from the page's form")

PAGES: Final = Description(
    paths={
        "/dashboard": {"get": operation(
            "The marketing dashboard", tag=TAG,
            description="It asks for the admin (or a partner) token and keeps it in the tab.",
            answers={200: PAGE})},
        "/dashboard/{asset}": {"get": operation(
            "The dashboard's scripts, styles and charting library", tag=TAG,
            parameters=[in_path("asset", choice([*DASHBOARD_ASSETS, "plotly.min.js"]),
                                "a file name")],
            answers={200: answer("the file", {"text/javascript": {"type": "string"},
                                              "text/css": {"type": "string"}}),
                     304: answer("not changed since the ETag in If-None-Match"),
                     **errors(404)})},
        "/api/partners/{partner_id}/portal-link": {"post": operation(
            "A one-time sign-in link to the partner portal (24 h)", tag=PORTAL_TAG,
            security=ADMIN,
            parameters=[in_path("partner_id", PARTNER_ID, "an active partner")],
            answers={201: json_answer("the link", answer_object({
                "url": text(fmt="uri"), "expiresAt": text(fmt="date-time"), "partnerId": text(),
            })), **errors(401, 403, 404, 409, 422, 503)})},
        "/portal": {"get": portal("The partner's overview: its figures with its downline",
                                  parameters=[RANGE])},
        "/portal/signin": {
            "get": portal("The sign-in page a link opens (opening it spends nothing)",
                          session=False, parameters=[
                              query("token", text(), "the link's token (its first 1024 "
                                                     "characters are read)"),
                              query("signed-out", text(), "shows the signed-out page")],
                          answers={200: answer(
                              "the page; a client that does not ask for HTML gets the "
                              "signed-out notice as JSON", {HTML: {"type": "string"},
                                                            JSON: ref("Error")})},
                          statuses=(400, 401, 410, 503)),
            "post": portal("Sign in: spends the link, starts a 12-hour session", session=False,
                           form=form(token=text(), form_key=text(
                               description="from the sign-in page, matched with its cookie")),
                           answers={303: answer("signed in: to /portal", headers={
                               "Location": "/portal",
                               "Set-Cookie": f"{COOKIE}: HttpOnly; SameSite=Strict; 12 h"})},
                           statuses=(400, 403, 410, 413, 503)),
        },
        "/portal/signout": {"post": portal(
            "Sign out", session=False, form=form(csrf=CSRF), answers={303: SEE_OTHER},
            statuses=(400, 403, 413, 503))},
        "/portal/links": {
            "get": portal("The partner's links with their figures", parameters=[
                RANGE, CURSOR, query("created", text(), "a link just created, to show")]),
            "post": portal("Create a link", form=form(
                csrf=CSRF, campaign=text(), subId=text(), destination=text()),
                answers={303: SEE_OTHER, 422: answer("the page, saying what to correct",
                                                     {HTML: {"type": "string"},
                                                      JSON: ref("Error")})},
                statuses=(400, 401, 403, 413, 503)),
        },
        "/portal/links/{code}/qr.svg": {"get": portal(
            "A link's QR code (SVG)", parameters=[CODE], statuses=(401, 404, 503),
            answers={200: answer("the image", {"image/svg+xml": IMAGE})})},
        "/portal/links/{code}/qr.png": {"get": portal(
            "A link's QR code (PNG)", parameters=[CODE], statuses=(401, 404, 503),
            answers={200: answer("the image", {"image/png": {
                "type": "string", "contentMediaType": "image/png"}})})},
        "/portal/downline": {"get": portal("The partner's downline, level by level", parameters=[
            RANGE, query("partner", text(max_length=64), "a partner of the downline to open")],
            statuses=(401, 404, 422, 503))},
        "/portal/commissions": {"get": portal(
            "The partner's commission lines for a month",
            parameters=[query("month", or_empty(PERIOD), "default: this month"), CURSOR])},
        "/portal/statements/{name}": {"get": portal(
            "The partner's statement for a month", statuses=(401, 404, 503),
            parameters=[in_path("name", text(f"^{PERIOD_PATTERN}\\.(json|csv|pdf)$"),
                                "YYYY-MM.json, .csv or .pdf")],
            answers={200: answer("the statement", {
                JSON: ref("Statement"), CSV: {"type": "string"},
                "application/pdf": {"type": "string", "contentMediaType": "application/pdf"}})})},
        "/portal/static/{asset}": {"get": operation(
            "The portal's styles and script", tag=PORTAL_TAG,
            parameters=[in_path("asset", choice(STATIC), "a file name")],
            answers={200: answer("the file", {"text/css": {"type": "string"},
                                              "text/javascript": {"type": "string"}}),
                     **errors(404)})},
    },
    components={"securitySchemes": {"portalSession": {
        "type": "apiKey", "in": "cookie", "name": COOKIE,
        "description": "the portal's session (after signing in with a link from "
                       "POST /api/partners/{partner_id}/portal-link)"}}},
    tags={TAG: "The marketing dashboard",
          PORTAL_TAG: "The partner's own pages, after a one-time sign-in link"},
)

HOME: Final = Description(paths={"/": {"get": operation(
    "To the dashboard", tag=TAG, answers={302: answer("to /dashboard",
                                                      headers={"Location": "/dashboard"})})}})
