"""The description of the SSO side's routes: the hooks the broker's backend calls, the webhook
cTrader calls, and their admin routes (edge/sso/hooks.py, edge/sso/admin.py)."""

from __future__ import annotations

from typing import Final

from edge.openapi import (
    ADMIN,
    JSON,
    Description,
    Schema,
    Security,
    answer,
    answer_object,
    array,
    choice,
    errors,
    in_path,
    integer,
    json_answer,
    nullable,
    operation,
    query,
    request_object,
    text,
)
from edge.registry.model import PARTNER_ID_PATTERN
from edge.sso.admin import MAX_DEAD_LETTERS_SHOWN
from edge.sso.hooks import PROFILE_LIMITS
from edge.sso.registrations import (
    ATTRIBUTED,
    ATTRIBUTED_NEW,
    PENDING_ATTRIBUTION,
    REATTRIBUTED,
)

TAG: Final = "sso hooks"
HOOK: Final[Security] = [{"hook": []}]
CTRADER_ID: Final[Schema] = {
    "oneOf": [integer(1, 2**63 - 1), text("^[0-9]{1,19}$")],
    "description": "a cTrader id: a positive whole number (or a string of its digits)",
}
PARTNER_ID: Final = text(f"^{PARTNER_ID_PATTERN.pattern}$")
# Who the registration is credited to: the signed token from /attribution, or a clickId, or a
# partnerId; the first that is given decides, the others must agree with it.
ATTRIBUTION_FIELDS: Final = {
    "token": text(description="from GET /attribution"),
    "clickId": text(max_length=64), "partnerId": PARTNER_ID,
}
ASSIGNMENT: Final = answer_object({
    "userId": nullable(integer(1)), "ctidTraderAccountId": nullable(integer(1)),
    "partnerId": text(), "clickId": nullable(text()),
    "assignment": choice(["done", "queued"], "queued: cTrader is told later (outbox)"),
    "duplicate": {"type": "boolean", "description": "this user was assigned already"},
})
CREATED_USER: Final = answer_object({
    "userId": integer(1), "partnerId": nullable(text()),
    "ctidTraderAccountId": nullable(integer(1)), "clickId": nullable(text()),
    "assignment": choice(["none", "done", "queued", "failed"],
                         "none: no attribution was sent; failed: cTrader refused it"),
    "duplicate": {"type": "boolean"},
    "error": {"type": "object", "description": "why cTrader refused the assignment"},
}, optional=("ctidTraderAccountId", "clickId", "duplicate", "error"))

HOOKS: Final = Description(
    paths={
        "/hooks/sso/referral": {"post": operation(
            "Credit a registered user to a partner", tag=TAG, security=HOOK,
            description="Assigns the partner in cTrader (PUT …/ctid/referral) and records the "
                        "registration. Send userId or ctidTraderAccountId, and the attribution.",
            body={JSON: request_object({
                "userId": CTRADER_ID, "ctidTraderAccountId": CTRADER_ID, **ATTRIBUTION_FIELDS,
            })}, example={"userId": 4242, "token": "(the token GET /attribution returned)"},
            answers={200: json_answer("assigned, or queued for cTrader", ASSIGNMENT),
                     **errors(400, 401, 413, 422, 502, 503)},
        )},
        "/hooks/sso/users": {"post": operation(
            "Create the cTrader ID user, then credit it", tag=TAG, security=HOOK,
            body={JSON: request_object({
                "email": text(max_length=PROFILE_LIMITS["email"]),
                **{name: text(max_length=limit) for name, limit in PROFILE_LIMITS.items()
                   if name != "email"},
                **ATTRIBUTION_FIELDS,
            }, required=["email"])},
            example={"email": "new.trader@example.com", "preferredLanguage": "en",
                     "token": "(the token GET /attribution returned)"},
            answers={200: json_answer("the user, and its assignment", CREATED_USER),
                     **errors(400, 401, 409, 413, 422, 502, 503)},
        )},
        "/hooks/ctrader/attribution": {"post": operation(
            "cTrader: a user was invited in the app", tag=TAG,
            security=[{"ctraderWebhook": []}],
            description="404 while INVITE_CTRADER_WEBHOOK_USER/PASSWORD are unset.",
            body={JSON: request_object({
                "invitedUserId": CTRADER_ID, "partnerUserId": CTRADER_ID,
                "brokerName": text(min_length=1),
                "brokerPartnerId": {"oneOf": [PARTNER_ID, integer(0)]},
            }, required=["invitedUserId", "partnerUserId", "brokerName"])},
            example={"invitedUserId": 4242, "partnerUserId": 77, "brokerName": "broker-crm"},
            answers={
                200: json_answer("the verdict", answer_object({
                    "brokerPartnerId": nullable(text()),
                    "brokerResult": choice([ATTRIBUTED_NEW, ATTRIBUTED, PENDING_ATTRIBUTION,
                                            REATTRIBUTED]),
                })),
                401: answer("not the configured Basic credentials",
                            {JSON: {"$ref": "#/components/schemas/Error"}},
                            headers={"WWW-Authenticate": 'Basic realm="invite-edge"'}),
                **errors(400, 404, 413, 422, 503),
            },
        )},
        "/api/ctrader/dead-letters": {"get": operation(
            "Work cTrader or a webhook refused, newest first", tag=TAG, security=ADMIN,
            parameters=[query("limit", integer(1, MAX_DEAD_LETTERS_SHOWN),
                              "at most this many (default 100)")],
            answers={200: json_answer("the outbox's state", answer_object({
                "queued": integer(0, description="jobs waiting to be sent"),
                "deadLetters": array({"type": "object"}),
            })), **errors(401, 422, 503)},
        )},
        "/api/partners/{partner_id}/webhook": {"get": operation(
            "What a partner needs to verify its notifications", tag=TAG, security=ADMIN,
            parameters=[in_path("partner_id", PARTNER_ID, "the partner's id")],
            answers={200: json_answer("its webhook URL, signature header and secret",
                                      answer_object({
                                          "partnerId": text(), "webhookUrl": nullable(text()),
                                          "signatureHeader": text(), "secret": text(),
                                      })),
                     **errors(401, 404, 422, 503)},
        )},
    },
    components={"securitySchemes": {
        "hook": {"type": "http", "scheme": "bearer", "description": "INVITE_HOOK_TOKEN"},
        "ctraderWebhook": {"type": "http", "scheme": "basic",
                           "description": "INVITE_CTRADER_WEBHOOK_USER and _PASSWORD"},
    }},
    tags={TAG: "Registrations: the broker's SSO hooks and cTrader's webhook"},
)
