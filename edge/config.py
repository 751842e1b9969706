"""Settings: built once from the environment, typed, validated, passed down."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from edge.errors import ConfigError

DEFAULT_REGISTRATION_URL = "http://127.0.0.1:8000/demo/register"
COOKIE_NAME = "invite_ref"
CLICK_STREAM = "invite:clicks"
# Attributed registrations (and later funnel events), one JSON object in field `e`; the
# batcher moves them into ClickHouse `conversions`. Its fields are a contract with analytics.
CONVERSION_STREAM = "invite:conversions"

# Group commit: a batch goes to Redis as soon as the previous one is acknowledged, or when it
# holds this many clicks; a request waits for its batch's acknowledgement.
CLICK_BATCH_MAX = 512
# Redis slower than this for one batch: the batch goes to the disk spool instead, and the edge
# stays on the spool until a probe finds Redis healthy again.
CLICK_WRITE_TIMEOUT_S = 0.25
REDIS_PROBE_INTERVAL_S = 0.5
SHUTDOWN_DRAIN_S = 5.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{key}={value} is outside {low}..{high}")
    return value


def _list(raw: str | None) -> list[str]:
    return [item.strip() for item in (raw or "").split(",") if item.strip()]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _stored_secret(data_dir: Path, name: str, nbytes: int) -> str:
    """Read a generated secret from the data dir, creating it once (safe across processes)."""
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
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    redis_url: str | None
    clickhouse_url: str
    secrets: tuple[str, ...]
    registration_url: str
    allowed_destinations: tuple[str, ...]
    cookie_domain: str | None
    cookie_secure: bool
    attribution_days: int
    attribution_model: str
    allowed_origins: tuple[str, ...]
    admin_tokens: tuple[str, ...]
    hook_tokens: tuple[str, ...]
    fallback_url: str | None = None
    country_header: str | None = None
    client_ip_header: str | None = None
    public_url: str | None = None
    log_format: str = "text"
    ctrader_url: str | None = None
    ctrader_token: str | None = field(default=None, repr=False)
    ctrader_manager_login: str | None = None
    ctrader_manager_password: str | None = field(default=None, repr=False)
    broker_crm_name: str | None = None
    ctrader_webhook_user: str | None = None
    ctrader_webhook_password: str | None = field(default=None, repr=False)
    batcher_consumer: str | None = None
    batcher_batch_rows: int = 50_000
    batcher_flush_ms: int = 500
    batcher_max_deliveries: int = 5
    batcher_claim_idle_ms: int = 60_000
    partners_sync_s: int = 60
    hook_budget_ms: int = 2_000
    ctrader_timeout_ms: int = 5_000
    ctrader_attempts: int = 4
    ctrader_backoff_ms: int = 200
    ctrader_backoff_max_ms: int = 10_000
    outbox_concurrency: int = 32
    outbox_claim_idle_ms: int = 60_000

    @property
    def signing_secret(self) -> str:
        return self.secrets[0]

    @property
    def attribution_seconds(self) -> int:
        return self.attribution_days * 86400

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("INVITE_DATA_DIR") or "./var").resolve()

        secret_list = _list(env.get("INVITE_SECRET"))
        if not secret_list:
            secret_list = [_stored_secret(data_dir, "secret", 32)]
        for value in secret_list:
            if len(value) < 16:
                raise ConfigError("INVITE_SECRET: each key must be at least 16 characters")

        registration_url = env.get("INVITE_REGISTRATION_URL") or DEFAULT_REGISTRATION_URL
        reg = urlsplit(registration_url)
        if reg.scheme not in ("http", "https") or not reg.hostname:
            raise ConfigError(
                f"INVITE_REGISTRATION_URL={registration_url!r} must be an absolute http(s) URL"
            )
        allowed = _list(env.get("INVITE_ALLOWED_DESTINATIONS")) or [reg.hostname]
        fallback = env.get("INVITE_FALLBACK_URL") or None
        if fallback is not None:
            fb = urlsplit(fallback)
            if fb.scheme not in ("http", "https") or not fb.hostname:
                raise ConfigError(
                    f"INVITE_FALLBACK_URL={fallback!r} must be an absolute http(s) URL"
                )

        model = (env.get("INVITE_ATTRIBUTION_MODEL") or "last").strip().lower()
        if model not in ("first", "last"):
            raise ConfigError(f"INVITE_ATTRIBUTION_MODEL={model!r} must be 'first' or 'last'")

        admin_tokens = _list(env.get("INVITE_ADMIN_TOKEN")) or [
            _stored_secret(data_dir, "admin_token", 24)
        ]
        hook_tokens = _list(env.get("INVITE_HOOK_TOKEN")) or [
            _stored_secret(data_dir, "hook_token", 24)
        ]
        clickhouse_url = env.get("INVITE_CLICKHOUSE_URL") or f"chdb://{data_dir / 'clickhouse'}"
        if not clickhouse_url.startswith(("chdb://", "http://", "https://")):
            raise ConfigError(
                "INVITE_CLICKHOUSE_URL must be http(s)://user:pass@host:8123/ or chdb://DIR"
            )
        log_format = (env.get("INVITE_LOG_FORMAT") or "text").lower()
        if log_format not in ("text", "json"):
            raise ConfigError(f"INVITE_LOG_FORMAT={log_format!r} must be 'text' or 'json'")

        ctrader_url = (env.get("INVITE_CTRADER_URL") or "").rstrip("/") or None
        if ctrader_url is not None:
            parts = urlsplit(ctrader_url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
                raise ConfigError(
                    f"INVITE_CTRADER_URL={ctrader_url!r} must be an http(s) base URL "
                    "like https://host:port"
                )
        manager_login = env.get("INVITE_CTRADER_MANAGER_LOGIN") or None
        if manager_login is not None and not manager_login.isdigit():
            raise ConfigError(f"INVITE_CTRADER_MANAGER_LOGIN={manager_login!r} is not a number")
        if manager_login and not env.get("INVITE_CTRADER_MANAGER_PASSWORD"):
            raise ConfigError(
                "INVITE_CTRADER_MANAGER_LOGIN is set without INVITE_CTRADER_MANAGER_PASSWORD"
            )

        return cls(
            data_dir=data_dir,
            redis_url=env.get("INVITE_REDIS_URL") or None,
            clickhouse_url=clickhouse_url,
            secrets=tuple(secret_list),
            registration_url=registration_url,
            allowed_destinations=tuple(host.lower() for host in allowed),
            cookie_domain=env.get("INVITE_COOKIE_DOMAIN") or None,
            cookie_secure=_flag(env, "INVITE_COOKIE_SECURE", True),
            attribution_days=_int(env, "INVITE_ATTRIBUTION_DAYS", 30, 1, 3650),
            attribution_model=model,
            allowed_origins=tuple(
                _list(env.get("INVITE_ALLOWED_ORIGINS")) or [_origin(registration_url)]
            ),
            admin_tokens=tuple(admin_tokens),
            hook_tokens=tuple(hook_tokens),
            fallback_url=fallback,
            country_header=(env.get("INVITE_COUNTRY_HEADER") or "").lower() or None,
            client_ip_header=(env.get("INVITE_CLIENT_IP_HEADER") or "").lower() or None,
            public_url=(env.get("INVITE_PUBLIC_URL") or "").rstrip("/") or None,
            log_format=log_format,
            ctrader_url=ctrader_url,
            ctrader_token=env.get("INVITE_CTRADER_TOKEN") or None,
            ctrader_manager_login=manager_login,
            ctrader_manager_password=env.get("INVITE_CTRADER_MANAGER_PASSWORD") or None,
            broker_crm_name=env.get("INVITE_BROKER_CRM_NAME") or None,
            ctrader_webhook_user=env.get("INVITE_CTRADER_WEBHOOK_USER") or None,
            ctrader_webhook_password=env.get("INVITE_CTRADER_WEBHOOK_PASSWORD") or None,
            batcher_consumer=env.get("INVITE_BATCHER_CONSUMER") or None,
            batcher_batch_rows=_int(env, "INVITE_BATCHER_BATCH_ROWS", 50_000, 1, 1_000_000),
            batcher_flush_ms=_int(env, "INVITE_BATCHER_FLUSH_MS", 500, 10, 60_000),
            batcher_max_deliveries=_int(env, "INVITE_BATCHER_MAX_DELIVERIES", 5, 1, 1000),
            batcher_claim_idle_ms=_int(
                env, "INVITE_BATCHER_CLAIM_IDLE_MS", 60_000, 1_000, 86_400_000
            ),
            partners_sync_s=_int(env, "INVITE_PARTNERS_SYNC_S", 60, 1, 86_400),
            hook_budget_ms=_int(env, "INVITE_HOOK_BUDGET_MS", 2_000, 0, 60_000),
            ctrader_timeout_ms=_int(env, "INVITE_CTRADER_TIMEOUT_MS", 5_000, 10, 120_000),
            ctrader_attempts=_int(env, "INVITE_CTRADER_ATTEMPTS", 4, 1, 20),
            ctrader_backoff_ms=_int(env, "INVITE_CTRADER_BACKOFF_MS", 200, 1, 60_000),
            ctrader_backoff_max_ms=_int(
                env, "INVITE_CTRADER_BACKOFF_MAX_MS", 10_000, 1, 3_600_000
            ),
            outbox_concurrency=_int(env, "INVITE_OUTBOX_CONCURRENCY", 32, 1, 1024),
            outbox_claim_idle_ms=_int(
                env, "INVITE_OUTBOX_CLAIM_IDLE_MS", 60_000, 100, 86_400_000
            ),
        )
