"""The one exception tree of edge and analytics; each error knows its HTTP status and JSON code.

    InviteError
    ├── ConfigError            bad settings (the message names the variable)
    ├── CliError               a command that cannot run as asked (exit 2, says what to do)
    ├── InvalidInput     422   a request value broke a rule (the message names it)
    │   ├── InvalidAttribution   a forged or expired token, an unknown or mismatched clickId
    │   ├── UnknownPartner       the attribution names a partner the registry does not know
    │   ├── PartnerSuspended     the attribution names a suspended partner: not credited
    │   ├── InvalidEvents        posted funnel events refused: `details` name index and field
    │   └── BadEvent             a stream entry or posted event that is not an event (says why)
    ├── BadRequest       400   the request body could not be read at all
    │   └── BodyTooLarge   413   longer than the route takes (refused while reading)
    ├── Unauthorized     401   missing or wrong bearer token
    ├── Forbidden        403   a valid token outside its scope
    ├── NotFound         404   unknown partner, link or code
    ├── Conflict         409   the value is taken (an alias, a concurrent edit)
    ├── Unavailable      503   a store the answer needs did not answer (retry later)
    │   ├── RedisUnavailable
    │   └── ClickHouseUnavailable
    └── UpstreamError    502   a backend failed; carries its errorCode, description, status
        ├── CTraderError             the cTrader backend
        │   ├── CTraderUnavailable   503   timeout, connection error or 5xx: retried
        │   │   ├── CTraderRateLimited     REQUEST_FREQUENCY_EXCEEDED: retried later
        │   │   ├── CTraderAuthFailed      CH_CLIENT_AUTH_FAILURE / CID_TOKEN_EXPIRED
        │   │   └── CTraderNotConfigured   INVITE_CTRADER_URL (or a token) unset: work waits
        │   └── CTraderRejected            any other 4xx (INVALID_REQUEST, …): a dead letter
        └── WebhookError             a partner's webhook
            ├── WebhookUnavailable         timeout, connection error, 5xx or 429: retried
            └── WebhookRejected            any other 4xx: a dead letter

`retryable` tells an outbox whether to try again later or give the work up.
"""

from __future__ import annotations

from typing import Any


def error_body(code: str, message: str) -> dict[str, dict[str, Any]]:
    """The JSON body of every HTTP error: `{"error": {"code", "message"}}`."""
    return {"error": {"code": code, "message": message}}


class InviteError(Exception):
    status = 500
    code = "internal_error"
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, dict[str, Any]]:
        return error_body(self.code, self.message)


class ConfigError(InviteError):
    code = "config_error"


class CliError(InviteError):
    code = "cli_error"


class InvalidInput(InviteError):
    status = 422
    code = "invalid_input"


class InvalidAttribution(InvalidInput):
    code = "invalid_attribution"


class UnknownPartner(InvalidInput):
    code = "unknown_partner"


class PartnerSuspended(InvalidInput):
    code = "partner_suspended"


class InvalidEvents(InvalidInput):
    """Some posted events break a rule; none was stored. `details`: one {index, field, message}
    per fault, index counting from 0 in the batch (the line number in an import)."""

    code = "invalid_events"

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.details = details

    def to_json(self) -> dict[str, dict[str, Any]]:
        body = error_body(self.code, self.message)
        body["error"]["details"] = self.details
        return body


class BadEvent(InvalidInput):
    code = "bad_event"


class BadRequest(InviteError):
    status = 400
    code = "bad_request"


class BodyTooLarge(BadRequest):
    status = 413
    code = "body_too_large"


class Unauthorized(InviteError):
    status = 401
    code = "unauthorized"


class Forbidden(InviteError):
    status = 403
    code = "forbidden"


class NotFound(InviteError):
    status = 404
    code = "not_found"


class Conflict(InviteError):
    status = 409
    code = "conflict"


class Unavailable(InviteError):
    status = 503
    code = "unavailable"


class RedisUnavailable(Unavailable):
    code = "redis_unavailable"


class ClickHouseUnavailable(Unavailable):
    """ClickHouse could not be reached or could not answer now; the message says what to do."""

    code = "clickhouse_unavailable"


class UpstreamError(InviteError):
    """A backend the edge calls failed; what it answered, for dead letters and operators."""

    status = 502
    code = "upstream_error"

    def __init__(
        self, message: str, *, error_code: str = "", description: str = "", http_status: int = 0
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.description = description
        self.http_status = http_status
        self.retry_after_s = 0.0  # a Retry-After the backend sent


class CTraderError(UpstreamError):
    code = "ctrader_error"


class CTraderUnavailable(CTraderError):
    status = 503
    code = "ctrader_unavailable"
    retryable = True


class CTraderRateLimited(CTraderUnavailable):
    code = "ctrader_rate_limited"


class CTraderAuthFailed(CTraderUnavailable):
    code = "ctrader_auth_failed"


class CTraderNotConfigured(CTraderUnavailable):
    code = "ctrader_not_configured"


class CTraderRejected(CTraderError):
    code = "ctrader_rejected"


class WebhookError(UpstreamError):
    code = "webhook_error"


class WebhookUnavailable(WebhookError):
    retryable = True


class WebhookRejected(WebhookError):
    pass
