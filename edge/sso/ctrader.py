"""The cTrader backend client: cTrader ID users, their partner identifier, the Manager token.

Every call carries `?token=`; the token never reaches a log line or an exception message
(`edge.logs.redact_url`, and a filter on httpx's own loggers). Timeouts, connection errors, 5xx and
`REQUEST_FREQUENCY_EXCEEDED` are retried with backoff; `CH_CLIENT_AUTH_FAILURE` and
`CID_TOKEN_EXPIRED` renew a login-based token once and try again; any other 4xx is final.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from edge.backoff import RetryPolicy, with_retries
from edge.config import CTraderSettings
from edge.errors import (
    CTraderAuthFailed,
    CTraderError,
    CTraderNotConfigured,
    CTraderRateLimited,
    CTraderRejected,
    CTraderUnavailable,
    InvalidInput,
)
from edge.logs import redact_url
from edge.spelling import is_ascii_digits
from edge.sso.http_pool import HttpPool

log = logging.getLogger("invite.ctrader")

RATE_LIMITED = "REQUEST_FREQUENCY_EXCEEDED"
TOKEN_REFUSED = frozenset({"CH_CLIENT_AUTH_FAILURE", "CID_TOKEN_EXPIRED"})
MAX_DESCRIPTION = 300
class RedactTokens(logging.Filter):
    """httpx logs every request's URL at INFO: keep the Manager token out of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "token=" in record.getMessage():
            record.msg = redact_url(record.getMessage())
            record.args = None
        return True


def install_log_redaction() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactTokens) for existing in logger.filters):
            logger.addFilter(RedactTokens())


@dataclass(frozen=True, slots=True)
class CTraderUser:
    """Whom a partner identifier belongs to: a cTrader ID user or one of its trading accounts."""

    user_id: int | None = None
    ctid_trader_account_id: int | None = None

    def __post_init__(self) -> None:
        if (self.user_id is None) == (self.ctid_trader_account_id is None):
            raise InvalidInput("give exactly one of userId and ctidTraderAccountId")

    def fields(self) -> dict[str, int]:
        if self.user_id is not None:
            return {"userId": self.user_id}
        assert self.ctid_trader_account_id is not None
        return {"ctidTraderAccountId": self.ctid_trader_account_id}

    @property
    def key(self) -> str:
        """A stable name for idempotency keys: `u:<userId>` or `a:<ctidTraderAccountId>`."""
        if self.user_id is not None:
            return f"u:{self.user_id}"
        return f"a:{self.ctid_trader_account_id}"


def error_from_response(method: str, path: str, response: httpx.Response) -> CTraderError:
    """The typed error for a 4xx/5xx answer with cTrader's `{"error": {errorCode, description}}`."""
    status = response.status_code
    error_code, description = f"HTTP_{status}", ""
    try:
        body = orjson.loads(response.content)
        detail = body.get("error") if isinstance(body, dict) else None
        if isinstance(detail, dict):
            error_code = str(detail.get("errorCode") or error_code)
            description = str(detail.get("description") or "")
    except orjson.JSONDecodeError:
        description = response.text
    description = redact_url(description[:MAX_DESCRIPTION])
    message = f"cTrader {method} {path} answered {status} {error_code}"
    if description:
        message += f": {description}"
    kind: type[CTraderError]
    if error_code == RATE_LIMITED or status == 429:
        kind = CTraderRateLimited
    elif error_code in TOKEN_REFUSED:
        kind = CTraderAuthFailed
    elif status >= 500 or status == 408:
        kind = CTraderUnavailable
    else:
        kind = CTraderRejected
    error = kind(message, error_code=error_code, description=description, http_status=status)
    error.retry_after_s = retry_after_s(response)
    return error


def retry_policy(settings: CTraderSettings) -> RetryPolicy:
    """How patiently one cTrader call is tried: INVITE_CTRADER_ATTEMPTS, _BACKOFF_*, _TIMEOUT_MS."""
    return RetryPolicy(
        attempts=settings.attempts, base_s=settings.backoff_ms / 1000,
        max_s=settings.backoff_max_ms / 1000, timeout_s=settings.timeout_ms / 1000,
    )


def retry_after_s(response: httpx.Response) -> float:
    raw = response.headers.get("retry-after", "")
    return float(raw) if is_ascii_digits(raw) else 0.0


class CTraderClient:
    """The calls of the cTrader broker integration that the SSO hook needs."""

    def __init__(
        self,
        http: httpx.AsyncClient | HttpPool,
        base_url: str | None,
        broker_crm_name: str | None,
        *,
        token: str | None = None,
        manager_login: int | None = None,
        manager_password: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self._base_url = (base_url or "").rstrip("/")
        self._crm_name = broker_crm_name or ""
        self._fixed_token = token
        self._login = manager_login
        self._hashed_password = (
            hashlib.md5(manager_password.encode(), usedforsecurity=False).hexdigest()
            if manager_password else None
        )
        self._token: str | None = token
        self._token_lock = asyncio.Lock()
        self.policy = policy or RetryPolicy()
        install_log_redaction()

    @classmethod
    def from_settings(
        cls, settings: CTraderSettings, http: httpx.AsyncClient | HttpPool
    ) -> CTraderClient:
        return cls(
            http, settings.url, settings.broker_crm_name, token=settings.token,
            manager_login=settings.manager_login, manager_password=settings.manager_password,
            policy=retry_policy(settings),
        )

    @property
    def missing_settings(self) -> list[str]:
        """The settings still needed before a call can be made (empty when configured)."""
        missing = []
        if not self._base_url:
            missing.append("INVITE_CTRADER_URL")
        if not self._crm_name:
            missing.append("INVITE_BROKER_CRM_NAME")
        if not self._fixed_token and self._login is None:
            missing.append("INVITE_CTRADER_TOKEN (or INVITE_CTRADER_MANAGER_LOGIN/PASSWORD)")
        return missing

    @property
    def configured(self) -> bool:
        return not self.missing_settings

    async def create_user(
        self,
        email: str,
        *,
        preferred_language: str | None = None,
        nick_name: str | None = None,
        first_name: str | None = None,
    ) -> int:
        body: dict[str, Any] = {"brokerCrmName": self._crm_name, "email": email}
        optional = {
            "preferredLanguage": preferred_language, "nickName": nick_name,
            "firstName": first_name,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        answer = await self._call("POST", "/cid/oauth2/ctid/create", body=body)
        user_id = answer.get("userId")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise CTraderUnavailable(f"cTrader created a user but sent no userId: {answer!r:.200}")
        return user_id

    async def set_partner(self, user: CTraderUser, partner_id: str) -> None:
        body = {"brokerCrmName": self._crm_name, "partnerId": partner_id, **user.fields()}
        await self._call("PUT", "/cid/oauth2/ctid/referral", body=body)

    async def get_partner(self, user: CTraderUser) -> dict[str, Any]:
        params = {"brokerCrmName": self._crm_name, **user.fields()}
        return await self._call("GET", "/cid/oauth2/ctid/referral", params=params)

    async def delete_partner(self, user: CTraderUser) -> None:
        params = {"brokerCrmName": self._crm_name, **user.fields()}
        await self._call("DELETE", "/cid/oauth2/ctid/referral", params=params)

    async def manager_token(self) -> str:
        """A fresh Manager token from the login and md5 of the password."""
        if self._login is None or self._hashed_password is None:
            raise CTraderNotConfigured(
                "no INVITE_CTRADER_MANAGER_LOGIN/PASSWORD to obtain a Manager token with"
            )
        answer = await self._call(
            "POST", "/v2/webserv/managers/token",
            body={"login": self._login, "hashedPassword": self._hashed_password}, signed=False,
        )
        token = answer.get("webservToken")
        if not isinstance(token, str) or not token:
            raise CTraderUnavailable("cTrader answered the token request without a webservToken")
        return token

    async def _current_token(self) -> str:
        if self._token is None:
            async with self._token_lock:
                if self._token is None:
                    self._token = await self.manager_token()
                    log.info("obtained a cTrader Manager token for login %s", self._login)
        return self._token

    async def _renew_token(self, refused: str, error: CTraderError) -> bool:
        """Replace a refused login-based token (once for all concurrent callers)."""
        if self._login is None:
            return False
        async with self._token_lock:
            if self._token == refused:
                self._token = await self.manager_token()
                log.info("renewed the cTrader Manager token after %s", error.error_code)
        return True

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        signed: bool = True,
    ) -> dict[str, Any]:
        if self.missing_settings and (signed or not self._base_url):
            raise CTraderNotConfigured(
                f"cTrader is not configured: set {', '.join(self.missing_settings)}"
            )
        renewed = False

        async def attempt() -> dict[str, Any]:
            nonlocal renewed
            token = await self._current_token() if signed else ""
            try:
                return await self._exchange(method, path, body, params, token)
            except CTraderAuthFailed as error:
                if not signed or renewed:
                    raise
                renewed = True
                if not await self._renew_token(token, error):
                    error.message += (
                        " (the Manager token was refused: set a valid INVITE_CTRADER_TOKEN, or "
                        "INVITE_CTRADER_MANAGER_LOGIN/PASSWORD so that it is renewed)"
                    )
                    error.args = (error.message,)
                    raise
                return await self._exchange(method, path, body, params, await self._current_token())

        return await with_retries(self.policy, attempt, not_here=(CTraderAuthFailed,))

    async def _exchange(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        params: dict[str, Any] | None,
        token: str,
    ) -> dict[str, Any]:
        """One request and its answer; a typed CTraderError for anything but success."""
        query = dict(params or {})
        if token:
            query["token"] = token
        try:
            response = await self._http.request(
                method, self._base_url + path, params=query,
                content=orjson.dumps(body) if body is not None else None,
                headers={"Content-Type": "application/json"} if body is not None else None,
                timeout=self.policy.timeout_s,
            )
        except httpx.TimeoutException:
            raise CTraderUnavailable(
                f"cTrader {method} {path} did not answer within {self.policy.timeout_s:g} s"
            ) from None
        except httpx.HTTPError as exc:
            # str(exc) may hold the URL, token included: name the failure only.
            raise CTraderUnavailable(
                f"cTrader {method} {path} failed: {type(exc).__name__}"
            ) from None
        if response.status_code >= 400:
            raise error_from_response(method, path, response)
        return _json_object(response)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    if not response.content.strip():
        return {}
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise CTraderUnavailable(
            f"cTrader answered {response.status_code} with a body that is not JSON"
        ) from None
    return answer if isinstance(answer, dict) else {"value": answer}
