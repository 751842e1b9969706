"""ClickHouse: opening it from INVITE_CLICKHOUSE_URL, embedded (chDB) or a server (HTTP)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit
from weakref import WeakSet

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from analytics.schema import DATABASE
from edge.errors import ConfigError
from edge.logs import redact_url

__all__ = ["Client", "embedded", "open_clickhouse"]

# A server that accepts the connection but never answers must not hold a batch (and the
# batcher's insert lock) forever; an insert of 100k rows takes well under this.
SEND_RECEIVE_TIMEOUT_S = 60
CONNECT_TIMEOUT_S = 5


# The clients of the embedded engine: it lives as long as this process (and its clients).
_EMBEDDED: WeakSet[Client] = WeakSet()


def embedded(client: Client) -> bool:
    """Whether the client is the embedded engine's (opened here with `chdb://`)."""
    return client in _EMBEDDED


def open_clickhouse(url: str) -> Client:
    """A clickhouse-connect client on database `invite`, created if missing.

    `chdb:///abs/path` opens the embedded engine in this process (one process per data dir);
    `http(s)://user:pass@host:8123/` a ClickHouse server. Connection failures propagate as
    clickhouse-connect's OperationalError, whose message carries host and port, not the password.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "chdb":
        client = clickhouse_connect.get_client(dsn=url)
        _EMBEDDED.add(client)
    elif scheme in ("http", "https"):
        # A path in the URL would be taken for a database name; ours is always `invite`.
        client = clickhouse_connect.get_client(
            dsn=urlunsplit(urlsplit(url)._replace(path="", query="", fragment="")),
            connect_timeout=CONNECT_TIMEOUT_S,
            send_receive_timeout=SEND_RECEIVE_TIMEOUT_S,
        )
    else:
        raise ConfigError(
            f"INVITE_CLICKHOUSE_URL={redact_url(url)!r} must start with chdb:// (embedded) "
            "or http:// / https:// (a ClickHouse server)"
        )
    # Read-only users (the analytics API on a server) may not create databases: look first.
    exists = client.command(
        "SELECT count() FROM system.databases WHERE name = %(name)s", parameters={"name": DATABASE}
    )
    if str(exists).strip() == "0":
        client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    client.database = DATABASE
    return client
