"""The SSO side's admin routes: the outbox's dead letters, what a partner needs for its webhook."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.config import Settings
from edge.registry.model import check_partner_id
from edge.registry.paging import query_parameters
from edge.registry.partners import PartnerRegistry
from edge.spelling import whole_number
from edge.sso.notify import SIGNATURE_HEADER, webhook_secret
from edge.sso.outbox import Outbox
from edge.web import admin_only

MAX_DEAD_LETTERS_SHOWN = 1000


@admin_only
async def partner_webhook(request: Request) -> Response:
    """What a partner needs to verify its notifications: the URL, the header, its secret."""
    registry: PartnerRegistry = request.app.state.registry
    partner = await registry.get(check_partner_id(request.path_params["partner_id"]))
    settings: Settings = request.app.state.settings
    return JSONResponse({
        "partnerId": partner.partner_id,
        "webhookUrl": partner.webhook_url,
        "signatureHeader": SIGNATURE_HEADER,
        "secret": webhook_secret(settings.signing_secret, partner.partner_id),
    })


@admin_only
async def dead_letters(request: Request) -> Response:
    """Outbox jobs given up on (cTrader or a webhook refused them), newest first."""
    values = query_parameters(request.query_params.multi_items(), ("limit",))
    limit = whole_number(values.get("limit", "100"), "limit", 1, MAX_DEAD_LETTERS_SHOWN)
    outbox: Outbox = request.app.state.outbox
    return JSONResponse({
        "queued": await outbox.queued(),
        "deadLetters": await outbox.dead_letters(limit),
    })


routes = [
    Route("/api/partners/{partner_id}/webhook", partner_webhook, methods=["GET"]),
    Route("/api/ctrader/dead-letters", dead_letters, methods=["GET"]),
]
