"""The edge's exception tree; each error knows its HTTP status and JSON code.

    InviteError
    ├── ConfigError            bad settings (the message names the variable)
    ├── InvalidInput     422   a request value broke a rule (the message names it)
    ├── BadRequest       400   the request body could not be read at all
    ├── Unauthorized     401   missing or wrong bearer token
    ├── Forbidden        403   a valid token outside its scope
    ├── NotFound         404   unknown partner, link or code
    └── Conflict         409   the value is taken (an alias, a concurrent edit)
"""

from __future__ import annotations


class InviteError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class ConfigError(InviteError):
    code = "config_error"


class InvalidInput(InviteError):
    status = 422
    code = "invalid_input"


class BadRequest(InviteError):
    status = 400
    code = "bad_request"


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
