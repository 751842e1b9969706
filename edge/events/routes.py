"""`POST /api/events`: the broker's funnel events, JSON or NDJSON, behind INVITE_EVENTS_TOKEN."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.events.intake import EventIntake
from edge.events.model import check_events, parse_body
from edge.web import bearer_only, read_body

MAX_EVENTS_BODY = 1024 * 1024
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")

events_only = bearer_only(
    lambda settings: settings.tokens.events,
    "the bearer token is not the events token (INVITE_EVENTS_TOKEN)",
)


@events_only
async def post_events(request: Request) -> Response:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw = await read_body(request, MAX_EVENTS_BODY)
    events = check_events(parse_body(raw, ndjson=content_type in NDJSON_TYPES), source="api")
    intake: EventIntake = request.app.state.event_intake
    result = await intake.submit(events)
    return JSONResponse(result.to_json(), headers={"Cache-Control": "no-store"})


routes = [Route("/api/events", post_events, methods=["POST"])]
