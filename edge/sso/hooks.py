"""The SSO hook routes the broker's backend calls, and the webhook cTrader calls.

`POST /hooks/sso/referral` and `POST /hooks/sso/users` take the hook bearer token;
`POST /hooks/ctrader/attribution` takes Basic auth with the INVITE_CTRADER_WEBHOOK_* pair.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.config import Settings
from edge.errors import CTraderRejected, InvalidInput, NotFound
from edge.registry.model import check_partner_id
from edge.signing import token_matches
from edge.spelling import is_ascii_digits
from edge.sso.ctrader import CTraderUser
from edge.sso.jobs import DEAD
from edge.sso.referrals import Referral, ReferralResolver
from edge.sso.registrations import Registrations
from edge.web import bearer_only, error_response, json_body

ATTRIBUTION_FIELDS = frozenset({"token", "clickId", "partnerId"})
USER_FIELDS = frozenset({"userId", "ctidTraderAccountId"})
PROFILE_LIMITS = {"email": 254, "preferredLanguage": 16, "nickName": 64, "firstName": 128}

hook_only = bearer_only(
    lambda settings: settings.tokens.hook,
    "the bearer token is not the hook token (INVITE_HOOK_TOKEN)",
)


def _refuse_unknown(body: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(sorted(unknown))}")


def positive_id(body: dict[str, Any], key: str, *, required: bool = False) -> int | None:
    """A cTrader id: a positive whole number, as a JSON number or a string of digits."""
    value = body.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"{key} is required: a positive whole number")
        return None
    if isinstance(value, str) and is_ascii_digits(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise InvalidInput(f"{key} must be a positive whole number, not {str(value)[:40]!r}")
    return value


def user_of(body: dict[str, Any]) -> CTraderUser:
    user_id = positive_id(body, "userId")
    account_id = positive_id(body, "ctidTraderAccountId")
    if user_id is None and account_id is None:
        raise InvalidInput("userId or ctidTraderAccountId is required")
    if user_id is not None and account_id is not None:
        raise InvalidInput("send userId or ctidTraderAccountId, not both")
    return CTraderUser(user_id, account_id)


def profile_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    limit = PROFILE_LIMITS[key]
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidInput(f"{key} must be a non-empty string of at most {limit} characters")
    return value.strip()


def _services(request: Request) -> tuple[Registrations, ReferralResolver, float]:
    state = request.app.state
    settings: Settings = state.settings
    return state.registrations, state.referral_resolver, settings.ctrader.hook_budget_ms / 1000


def _answer(user: CTraderUser, referral: Referral, state: str, duplicate: bool) -> dict[str, Any]:
    return {
        "userId": user.user_id,
        "ctidTraderAccountId": user.ctid_trader_account_id,
        "partnerId": referral.partner_id,
        "clickId": referral.click_id or None,
        "assignment": state,
        "duplicate": duplicate,
    }


@hook_only
async def sso_referral(request: Request) -> Response:
    body = await json_body(request)
    _refuse_unknown(body, ATTRIBUTION_FIELDS | USER_FIELDS)
    registrations, resolver, budget_s = _services(request)
    user = user_of(body)
    referral = await resolver.resolve(body)
    if referral is None:
        raise InvalidInput("attribution is required: token, clickId or partnerId")
    outcome = await registrations.assign(user, referral, "sso_referral", budget_s)
    if outcome.state == DEAD:
        message = (outcome.error or {}).get("message", "cTrader refused the assignment")
        raise CTraderRejected(f"{message}; see GET /api/ctrader/dead-letters")
    return JSONResponse(_answer(user, referral, outcome.state, outcome.duplicate))


@hook_only
async def sso_users(request: Request) -> Response:
    body = await json_body(request)
    _refuse_unknown(body, ATTRIBUTION_FIELDS | set(PROFILE_LIMITS))
    registrations, resolver, budget_s = _services(request)
    email = profile_text(body, "email")
    if email is None or "@" not in email:
        raise InvalidInput("email is required: the new user's e-mail address")
    profile = {name: profile_text(body, key) for name, key in (
        ("preferred_language", "preferredLanguage"), ("nick_name", "nickName"),
        ("first_name", "firstName"),
    )}
    # Refuse a bad attribution before a user exists that could not be credited.
    referral = await resolver.resolve(body)
    user_id = await registrations.create_user(email, **profile)
    if referral is None:
        return JSONResponse({"userId": user_id, "partnerId": None, "assignment": "none"})
    user = CTraderUser(user_id=user_id)
    outcome = await registrations.assign(user, referral, "sso_users", budget_s)
    answer = _answer(user, referral, outcome.state, outcome.duplicate)
    if outcome.state == DEAD:
        answer["assignment"] = "failed"  # the user exists: the caller still needs its userId
        answer["error"] = outcome.error
    return JSONResponse(answer)


def basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(
            ":"
        )
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


async def ctrader_attribution(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    expected_user, expected_password = (
        settings.ctrader.webhook_user, settings.ctrader.webhook_password
    )
    if not expected_user or not expected_password:
        raise NotFound(
            "the cTrader webhook is disabled: set INVITE_CTRADER_WEBHOOK_USER and "
            "INVITE_CTRADER_WEBHOOK_PASSWORD"
        )
    given = basic_credentials(request) or ("", "")
    # Both compared, in constant time, whatever the first gives.
    user_ok = token_matches(given[0], (expected_user,))
    password_ok = token_matches(given[1], (expected_password,))
    if not (user_ok and password_ok):
        return error_response(
            401, "unauthorized", "send Basic auth with INVITE_CTRADER_WEBHOOK_USER/PASSWORD",
            headers={"WWW-Authenticate": 'Basic realm="invite-edge"'},
        )
    body = await json_body(request)
    invited = positive_id(body, "invitedUserId", required=True)
    inviter = positive_id(body, "partnerUserId", required=True)
    broker_name = body.get("brokerName")
    if not isinstance(broker_name, str) or not broker_name:
        raise InvalidInput("brokerName is required")
    if settings.ctrader.broker_crm_name and broker_name != settings.ctrader.broker_crm_name:
        raise InvalidInput(f"brokerName {broker_name[:64]!r} is not this broker")
    broker_partner_id = body.get("brokerPartnerId")
    if broker_partner_id is not None:
        if not isinstance(broker_partner_id, str | int) or isinstance(broker_partner_id, bool):
            raise InvalidInput("brokerPartnerId must be a string")
        broker_partner_id = check_partner_id(str(broker_partner_id))
    assert invited is not None and inviter is not None
    registrations: Registrations = request.app.state.registrations
    verdict = await registrations.invited_in_app(invited, inviter, broker_partner_id)
    return JSONResponse(
        {"brokerPartnerId": verdict.partner_id, "brokerResult": verdict.broker_result}
    )


routes = [
    Route("/hooks/sso/referral", sso_referral, methods=["POST"]),
    Route("/hooks/sso/users", sso_users, methods=["POST"]),
    Route("/hooks/ctrader/attribution", ctrader_attribution, methods=["POST"]),
]
