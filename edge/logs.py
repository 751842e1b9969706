"""Logging: JSON lines in production, readable lines in a terminal; URLs as they may be shown."""

from __future__ import annotations

import logging
import re
import sys

import orjson

# A password in a URL's user info, and the values of parameters that carry a secret (redis-py
# takes `password`, cTrader calls take `token`).
_USER_PASSWORD = re.compile(r"(://[^:/?#@\s]*):[^/?#\s]*@")
_SECRET_PARAMETER = re.compile(r"(?i)\b((?:password|token|secret)=)[^&#\s'\"]+")


def redact_url(text: str) -> str:
    """A URL, or any text holding URLs, as it may appear in a message or a log: passwords and the
    values of secret parameters replaced by ***, the rest as it was."""
    return _SECRET_PARAMETER.sub(r"\1***", _USER_PASSWORD.sub(r"\1:***@", text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


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
