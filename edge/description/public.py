"""The description of the edge's public routes (the redirect, the attribution context, the demo
registration page, metrics) and of the funnel events' intake, from their modules' own limits."""

from __future__ import annotations

from typing import Final

from edge.events.model import MAX_BATCH, MAX_EVENT_ID
from edge.events.routes import MAX_EVENTS_BODY, NDJSON_TYPES
from edge.hotpath.attribution import COOKIE_NAME, VERIFY_BODY_LIMIT
from edge.openapi import (
    HTML,
    JSON,
    TIMESTAMP,
    Description,
    Operation,
    answer,
    answer_object,
    array,
    choice,
    errors,
    header,
    in_path,
    integer,
    json_answer,
    nullable,
    operation,
    ref,
    request_object,
    text,
)
from edge.registry.links import MAX_CODE_LENGTH
from edge.streams import EVENT_TYPES

EVENTS_TAG: Final = "funnel events"
REDIRECT_HEADERS: Final = {
    "Location": "the destination with the request's own query, plus partnerId, clickId and "
                "campaign",
    "Set-Cookie": f"{COOKIE_NAME}, only for a person's click on an active link",
    "Cache-Control": "private, no-store",
}


def redirect(method: str) -> Operation:
    return operation(
        f"Follow a referral link ({method})", tag="redirect",
        description="Every served redirect records its click once. HEAD, prefetches, link "
                    "previews, scanners and crawlers get the same 302 without the cookie, "
                    "recorded as such. An unknown, malformed or disabled code gets the 404 page "
                    "(or a 302 to INVITE_FALLBACK_URL). Never a 5xx.",
        parameters=[
            in_path("code", text(f"^[A-Za-z0-9_-]{{1,{MAX_CODE_LENGTH}}}$"),
                    "the link's code or alias"),
            header("Sec-Purpose", text(), "`prefetch`: no cookie, recorded as a prefetch"),
        ],
        answers={
            302: answer("to the link's destination", headers=REDIRECT_HEADERS),
            404: answer("no such link", {HTML: {"type": "string"}} if method == "GET" else None,
                        headers={"Cache-Control": "private, no-store"}),
        },
    )


ATTRIBUTION: Final = answer_object({
    "partnerId": text(), "campaign": nullable(text()), "clickId": text(),
    "clickedAt": TIMESTAMP, "expiresAt": TIMESTAMP,
    "token": text(description="signed; POST /api/attribution/verify checks it"),
}, description="Who a visitor's registration is credited to, from its click.")
EVENT: Final = {
    "type": "object",
    "required": ["eventId", "type", "ts"],
    "description": "A funnel event; which fields a type takes: README, \"Funnel events\". "
                   "Amounts and lots are decimals (numbers or strings of digits).",
    "properties": {
        "eventId": text(f"^[\\x20-\\x7e]{{1,{MAX_EVENT_ID}}}$", description="unique, forever"),
        "type": choice(EVENT_TYPES),
        "ts": {"type": ["string", "integer"],
               "description": "ISO 8601 with a zone, or ms since the epoch"},
        "userId": {"type": ["integer", "string"]},
        "ctidTraderAccountId": {"type": ["integer", "string"]},
        **{name: {"type": ["number", "string"]}
           for name in ("amount", "originalAmount", "lots", "commission", "markup")},
        "originalCurrency": text("^[A-Z]{3}$"),
        "symbol": text(), "positionId": {"type": ["integer", "string"]},
        "openedAt": {"type": ["string", "integer"]},
        "reverses": text(description="the eventId of a deposit or trade"),
    },
}

PUBLIC: Final = Description(
    paths={
        "/r/{code}": {"get": redirect("GET"), "head": redirect("HEAD")},
        "/attribution": {"get": operation(
            "The visitor's attribution, from its cookie", tag="attribution",
            description="For registration frontends, with credentials (CORS: only "
                        "INVITE_ALLOWED_ORIGINS).",
            parameters=[{"name": COOKIE_NAME, "in": "cookie", "required": False,
                         "schema": text(), "description": "set by the redirect"}],
            answers={200: json_answer("the attribution", ref("Attribution")),
                     204: answer("no valid cookie")},
        )},
        "/api/attribution/verify": {"post": operation(
            "Check an attribution token", tag="attribution",
            body={JSON: request_object({"token": text(min_length=1)}, required=["token"])},
            answers={200: json_answer("the attribution it holds", ref("Attribution")),
                     **errors(400, 413, 422)},
            description=f"The body takes at most {VERIFY_BODY_LIMIT} bytes.",
        )},
        "/api/events": {"post": operation(
            "Post funnel events", tag=EVENTS_TAG, security=[{"events": []}],
            description=f"1 to {MAX_BATCH} events, at most {MAX_EVENTS_BODY} bytes; all or "
                        "nothing: one bad event is a 422 naming each fault in `details` and "
                        "none is stored. An eventId seen before counts as a duplicate.",
            body={JSON: request_object({"events": array(ref("Event"), min_items=1,
                                                        max_items=MAX_BATCH)},
                                       required=["events"]),
                  **{media: {"type": "string", "description": "one event object a line"}
                     for media in NDJSON_TYPES[:1]}},
            example={"events": [{"eventId": "dep-1001", "type": "deposit",
                                 "ts": "2026-12-01T09:30:00Z", "userId": 4242,
                                 "amount": "250.00"}]},
            answers={200: json_answer("stored", answer_object(
                {"accepted": integer(0), "duplicates": integer(0)})),
                     **errors(400, 401, 413, 422, 503)},
        )},
        "/metrics": {"get": operation(
            "Prometheus metrics", tag="operations",
            answers={200: answer("the text exposition format",
                                 {"text/plain": {"type": "string"}})},
        )},
        "/demo/register": {"get": operation(
            "A demo registration page", tag="redirect",
            description="Where a click lands when INVITE_REGISTRATION_URL is left at its "
                        "default: it shows what /attribution returns.",
            answers={200: answer("the page", {HTML: {"type": "string"}})},
        )},
    },
    components={
        "schemas": {"Attribution": ATTRIBUTION, "Event": EVENT},
        "securitySchemes": {"events": {"type": "http", "scheme": "bearer",
                                       "description": "INVITE_EVENTS_TOKEN"}},
    },
    tags={
        "redirect": "Referral links: the redirect people follow",
        "attribution": "What registration frontends ask about a visitor",
        EVENTS_TAG: "The broker's funnel events, behind INVITE_EVENTS_TOKEN",
    },
)
