"""Logging: JSON lines in production, readable lines in a terminal; URLs as they may be shown."""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from edge.clock import iso_utc

# A password in a URL's user info, and the values of parameters that carry a secret (redis-py
# takes `password`, cTrader calls take `token`).
_USER_PASSWORD = re.compile(r"(://[^:/?#@\s]*):[^/?#\s]*@")
_SECRET_PARAMETER = re.compile(r"(?i)\b((?:password|token|secret)=)[^&#\s'\"]+")


def redact_url(text: str) -> str:
    """A URL, or any text holding URLs, as it may appear in a message or a log: passwords and the
    values of secret parameters replaced by ***, the rest as it was."""
    return _SECRET_PARAMETER.sub(r"\1***", _USER_PASSWORD.sub(r"\1:***@", text))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `ts` in RFC 3339, UTC, with milliseconds."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": iso_utc(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def server_logging(log_format: str) -> dict[str, Any] | None:
    """A logging.config dict for the HTTP servers' own loggers (uvicorn's, granian's) that makes
    their lines JSON like ours; None keeps the server's own format (text)."""
    if log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    loggers = ("uvicorn", "uvicorn.error", "uvicorn.access", "_granian", "granian.access")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "edge.logs.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
            for name in loggers
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    root = logging.getLogger("invite")
    if getattr(root, "_invite_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    root._invite_configured = True  # type: ignore[attr-defined]
