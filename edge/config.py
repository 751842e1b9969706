"""Settings: built once per process from the environment, typed, validated, grouped per concern,
and passed down (nothing else reads the environment)."""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from edge.errors import ConfigError
from edge.spelling import is_ascii_digits

DEFAULT_REGISTRATION_URL = "http://127.0.0.1:8000/demo/register"
# Where the generated tokens are kept under the data dir (file names, not secrets).
ADMIN_TOKEN_FILE = "admin_token"  # noqa: S105
HOOK_TOKEN_FILE = "hook_token"  # noqa: S105
EVENTS_TOKEN_FILE = "events_token"  # noqa: S105
_CURRENCY = re.compile(r"[A-Z]{3}")
# `invite run`'s private Redis lives in this folder of the data dir; its supervisor counts the
# restarts in RESTARTS_FILE there, which every process's /metrics reads.
PRIVATE_REDIS_DIR = "redis"
RESTARTS_FILE = "restarts"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class EdgeSettings:
    """The redirect: where clicks land, the attribution cookie, who may read it, request headers."""

    registration_url: str = DEFAULT_REGISTRATION_URL
    allowed_destinations: tuple[str, ...] = ("127.0.0.1",)
    allowed_origins: tuple[str, ...] = ("http://127.0.0.1:8000",)
    cookie_domain: str | None = None
    cookie_secure: bool = True
    attribution_days: int = 30
    attribution_model: str = "last"  # "last": a new click replaces the cookie; "first": kept
    fallback_url: str | None = None
    country_header: str | None = None  # lower case
    client_ip_header: str | None = None  # lower case
    public_url: str | None = None  # the base printed in link urls; None: the request's
    access_log: bool = False  # a line per request, the client's IP as its /24 or /48

    @property
    def attribution_seconds(self) -> int:
        return self.attribution_days * 86400


@dataclass(frozen=True)
class TokenSettings:
    """Bearer tokens, each a tuple so they rotate: any of them is accepted."""

    admin: tuple[str, ...]
    hook: tuple[str, ...]
    events: tuple[str, ...] = ()
    from_environment: frozenset[str] = frozenset()  # "admin", "hook", "events": set by a variable


@dataclass(frozen=True)
class CTraderSettings:
    """The cTrader backend the SSO hook calls, its webhook's credentials, and the outbox."""

    url: str | None = None
    token: str | None = field(default=None, repr=False)
    manager_login: int | None = None
    manager_password: str | None = field(default=None, repr=False)
    broker_crm_name: str | None = None
    webhook_user: str | None = None
    webhook_password: str | None = field(default=None, repr=False)
    hook_budget_ms: int = 2_000
    timeout_ms: int = 5_000
    attempts: int = 4
    backoff_ms: int = 200
    backoff_max_ms: int = 10_000
    outbox_concurrency: int = 32
    outbox_claim_idle_ms: int = 60_000


@dataclass(frozen=True)
class BatcherSettings:
    """The batchers that move the streams into ClickHouse, and the partners sync beside them."""

    consumer: str = "batcher"  # its name in the consumer group: keep it stable across restarts
    batch_rows: int = 50_000
    # Half a second, not the 1 s ClickHouse suggests: with the views the API reads, a batch takes
    # up to a second to insert on two cores, and clicks must show within 2 s.
    flush_ms: int = 500
    max_deliveries: int = 5
    claim_idle_ms: int = 60_000
    partners_sync_s: float = 60.0
    # Renewed every third of it while an insert runs; a batcher that dies holding the insert lock
    # holds up the others for at most this long.
    insert_lock_ttl_s: float = 10.0

    def __post_init__(self) -> None:
        if self.batch_rows < 1:
            raise ConfigError(f"batch_rows={self.batch_rows} must be at least 1")
        if self.max_deliveries < 1:
            raise ConfigError(f"max_deliveries={self.max_deliveries} must be at least 1")
        if self.claim_idle_ms <= self.flush_ms:
            # Otherwise a live batcher's own unflushed entries would look abandoned.
            raise ConfigError(
                f"INVITE_BATCHER_CLAIM_IDLE_MS={self.claim_idle_ms} must exceed the flush "
                f"interval INVITE_BATCHER_FLUSH_MS={self.flush_ms}"
            )

    @property
    def flush_interval_s(self) -> float:
        return self.flush_ms / 1000


@dataclass(frozen=True)
class AnalyticsSettings:
    clickhouse_url: str  # chdb://DIR (the embedded engine) or http(s)://user:pass@host:8123/
    ready_max_lag_s: int = 60  # /readyz answers 503 when the batcher is further behind
    clicks_retention_days: int = 400  # raw clicks older than this are dropped (TTL)

    @property
    def embedded(self) -> bool:
        """The engine runs in this process: one process per data dir."""
        return self.clickhouse_url.startswith("chdb://")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    redis_url: str | None  # None: `invite run` starts a private Redis
    secrets: tuple[str, ...] = field(repr=False)
    tokens: TokenSettings = field(repr=False)
    edge: EdgeSettings
    ctrader: CTraderSettings
    batcher: BatcherSettings
    analytics: AnalyticsSettings
    log_format: str = "text"
    currency: str = "USD"  # INVITE_CURRENCY: every amount of events, commissions, statements
    # The files under data_dir this call generated (INVITE_SECRET etc. were unset and the file
    # did not exist yet): a token may be shown once, when it is new.
    generated: frozenset[str] = frozenset()

    @property
    def signing_secret(self) -> str:
        return self.secrets[0]

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def private_redis_dir(self) -> Path:
        return self.data_dir / PRIVATE_REDIS_DIR

    def with_redis_url(self, url: str) -> Settings:
        """The same settings on another Redis (the private one `invite run` started)."""
        return replace(self, redis_url=url)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *,
        default_registration_url: str = DEFAULT_REGISTRATION_URL,
    ) -> Settings:
        """The settings of INVITE_* variables; `default_registration_url` stands where
        INVITE_REGISTRATION_URL is unset (`invite run` uses its own address)."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("INVITE_DATA_DIR") or "./var").resolve()
        generated: set[str] = set()
        secret_list = _list(env.get("INVITE_SECRET")) or [
            _stored_secret(data_dir, "secret", 32, generated)
        ]
        for value in secret_list:
            if len(value) < 16:
                raise ConfigError("INVITE_SECRET: each key must be at least 16 characters")
        log_format = (env.get("INVITE_LOG_FORMAT") or "text").lower()
        if log_format not in ("text", "json"):
            raise ConfigError(f"INVITE_LOG_FORMAT={log_format!r} must be 'text' or 'json'")
        return cls(
            data_dir=data_dir,
            redis_url=env.get("INVITE_REDIS_URL") or None,
            secrets=tuple(secret_list),
            tokens=TokenSettings(
                admin=tuple(_list(env.get("INVITE_ADMIN_TOKEN"))
                            or [_stored_secret(data_dir, ADMIN_TOKEN_FILE, 24, generated)]),
                hook=tuple(_list(env.get("INVITE_HOOK_TOKEN"))
                           or [_stored_secret(data_dir, HOOK_TOKEN_FILE, 24, generated)]),
                events=tuple(_list(env.get("INVITE_EVENTS_TOKEN"))
                             or [_stored_secret(data_dir, EVENTS_TOKEN_FILE, 24, generated)]),
                from_environment=frozenset(
                    name for name, variable in (
                        ("admin", "INVITE_ADMIN_TOKEN"), ("hook", "INVITE_HOOK_TOKEN"),
                        ("events", "INVITE_EVENTS_TOKEN"),
                    ) if _list(env.get(variable))
                ),
            ),
            edge=_edge_settings(env, default_registration_url),
            ctrader=_ctrader_settings(env),
            batcher=_batcher_settings(env),
            analytics=_analytics_settings(env, data_dir),
            log_format=log_format,
            currency=_currency(env),
            generated=frozenset(generated),
        )


def _edge_settings(env: Mapping[str, str], default_registration_url: str) -> EdgeSettings:
    registration_url = env.get("INVITE_REGISTRATION_URL") or default_registration_url
    registration_host = _absolute_http_url("INVITE_REGISTRATION_URL", registration_url)
    fallback = env.get("INVITE_FALLBACK_URL") or None
    if fallback is not None:
        _absolute_http_url("INVITE_FALLBACK_URL", fallback)
    model = (env.get("INVITE_ATTRIBUTION_MODEL") or "last").strip().lower()
    if model not in ("first", "last"):
        raise ConfigError(f"INVITE_ATTRIBUTION_MODEL={model!r} must be 'first' or 'last'")
    allowed = _list(env.get("INVITE_ALLOWED_DESTINATIONS")) or [registration_host]
    return EdgeSettings(
        registration_url=registration_url,
        allowed_destinations=tuple(host.lower() for host in allowed),
        allowed_origins=tuple(
            _list(env.get("INVITE_ALLOWED_ORIGINS")) or [_origin(registration_url)]
        ),
        cookie_domain=env.get("INVITE_COOKIE_DOMAIN") or None,
        cookie_secure=_flag(env, "INVITE_COOKIE_SECURE", True),
        attribution_days=_int(env, "INVITE_ATTRIBUTION_DAYS", 30, 1, 3650),
        attribution_model=model,
        fallback_url=fallback,
        country_header=(env.get("INVITE_COUNTRY_HEADER") or "").lower() or None,
        client_ip_header=(env.get("INVITE_CLIENT_IP_HEADER") or "").lower() or None,
        public_url=(env.get("INVITE_PUBLIC_URL") or "").rstrip("/") or None,
        access_log=_flag(env, "INVITE_ACCESS_LOG", False),
    )


def _ctrader_settings(env: Mapping[str, str]) -> CTraderSettings:
    url = (env.get("INVITE_CTRADER_URL") or "").rstrip("/") or None
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ConfigError(
                f"INVITE_CTRADER_URL={url!r} must be an http(s) base URL like https://host:port"
            )
    login = env.get("INVITE_CTRADER_MANAGER_LOGIN") or None
    if login is not None and not is_ascii_digits(login):
        raise ConfigError(f"INVITE_CTRADER_MANAGER_LOGIN={login!r} is not a number")
    if login and not env.get("INVITE_CTRADER_MANAGER_PASSWORD"):
        raise ConfigError(
            "INVITE_CTRADER_MANAGER_LOGIN is set without INVITE_CTRADER_MANAGER_PASSWORD"
        )
    return CTraderSettings(
        url=url,
        token=env.get("INVITE_CTRADER_TOKEN") or None,
        manager_login=int(login) if login else None,
        manager_password=env.get("INVITE_CTRADER_MANAGER_PASSWORD") or None,
        broker_crm_name=env.get("INVITE_BROKER_CRM_NAME") or None,
        webhook_user=env.get("INVITE_CTRADER_WEBHOOK_USER") or None,
        webhook_password=env.get("INVITE_CTRADER_WEBHOOK_PASSWORD") or None,
        hook_budget_ms=_int(env, "INVITE_HOOK_BUDGET_MS", 2_000, 0, 60_000),
        timeout_ms=_int(env, "INVITE_CTRADER_TIMEOUT_MS", 5_000, 10, 120_000),
        attempts=_int(env, "INVITE_CTRADER_ATTEMPTS", 4, 1, 20),
        backoff_ms=_int(env, "INVITE_CTRADER_BACKOFF_MS", 200, 1, 60_000),
        backoff_max_ms=_int(env, "INVITE_CTRADER_BACKOFF_MAX_MS", 10_000, 1, 3_600_000),
        outbox_concurrency=_int(env, "INVITE_OUTBOX_CONCURRENCY", 32, 1, 1024),
        outbox_claim_idle_ms=_int(env, "INVITE_OUTBOX_CLAIM_IDLE_MS", 60_000, 100, 86_400_000),
    )


def _batcher_settings(env: Mapping[str, str]) -> BatcherSettings:
    return BatcherSettings(
        consumer=env.get("INVITE_BATCHER_CONSUMER") or socket.gethostname(),
        batch_rows=_int(env, "INVITE_BATCHER_BATCH_ROWS", 50_000, 1, 1_000_000),
        flush_ms=_int(env, "INVITE_BATCHER_FLUSH_MS", 500, 10, 60_000),
        max_deliveries=_int(env, "INVITE_BATCHER_MAX_DELIVERIES", 5, 1, 1000),
        claim_idle_ms=_int(env, "INVITE_BATCHER_CLAIM_IDLE_MS", 60_000, 1_000, 86_400_000),
        partners_sync_s=_int(env, "INVITE_PARTNERS_SYNC_S", 60, 1, 86_400),
    )


def _analytics_settings(env: Mapping[str, str], data_dir: Path) -> AnalyticsSettings:
    url = env.get("INVITE_CLICKHOUSE_URL") or f"chdb://{data_dir / 'clickhouse'}"
    if not url.startswith(("chdb://", "http://", "https://")):
        raise ConfigError(
            "INVITE_CLICKHOUSE_URL must be http(s)://user:pass@host:8123/ or chdb://DIR"
        )
    return AnalyticsSettings(
        clickhouse_url=url,
        ready_max_lag_s=_int(env, "INVITE_READY_MAX_LAG_S", 60, 1, 86_400),
        clicks_retention_days=_int(env, "INVITE_CLICKS_RETENTION_DAYS", 400, 1, 36_500),
    )


def _currency(env: Mapping[str, str]) -> str:
    currency = (env.get("INVITE_CURRENCY") or "USD").strip()
    if _CURRENCY.fullmatch(currency) is None:
        raise ConfigError(f"INVITE_CURRENCY={currency!r} must be an ISO 4217 code such as USD")
    return currency


def _flag(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{key}={raw!r} is not a boolean: use 1 or 0")


def _int(env: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    digits = text[1:] if text.startswith("-") else text
    if not is_ascii_digits(digits):
        raise ConfigError(f"{key}={raw!r} is not a whole number")
    value = int(text)
    if not low <= value <= high:
        raise ConfigError(f"{key}={value} is outside {low}..{high}")
    return value


def _list(raw: str | None) -> list[str]:
    return [item.strip() for item in (raw or "").split(",") if item.strip()]


def _absolute_http_url(key: str, url: str) -> str:
    """The host of an absolute http(s) URL; ConfigError naming the variable otherwise."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname
    except ValueError:
        scheme, host = "", None
    if scheme not in ("http", "https") or not host:
        raise ConfigError(f"{key}={url!r} must be an absolute http(s) URL")
    return host


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _stored_secret(data_dir: Path, name: str, nbytes: int, generated: set[str]) -> str:
    """Read a generated secret from the data dir, creating it once (safe across processes);
    `generated` gets its name when this call created it."""
    path = data_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process won the race: use its value.
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    generated.add(name)
    return value
