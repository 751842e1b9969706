"""The server commands: `invite run`, `edge`, `analytics`, `batcher`, `migrate`.

This is the one place on the edge's side that starts analytics (imported lazily: the analytics
extra may not be installed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from functools import partial

from edge.app import create_app
from edge.cli.embedded_redis import EmbeddedRedis, running_url
from edge.cli.launch import EDGE_URL_FILE, SHUTDOWN_WATCHDOG_S, AppFactory, serve
from edge.config import ADMIN_TOKEN_FILE, EVENTS_TOKEN_FILE, HOOK_TOKEN_FILE, Settings
from edge.errors import CliError
from edge.logs import configure_logging, redact_url
from edge.shutdown import Watchdog

log = logging.getLogger("invite.run")

ANALYTICS_EXTRA = (
    "the analytics extra is not installed: pip install 'invite-edge[analytics]' "
    "(make install does)"
)
NO_REDIS = (
    "INVITE_REDIS_URL is not set and no `invite run` Redis is up: "
    "set INVITE_REDIS_URL=redis://host:6379/0"
)


def shown_host(host: str) -> str:
    """The address to print for a bind address (a wildcard bind is reached on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104


def run_all(args: argparse.Namespace) -> int:
    """`invite run`: a private Redis unless INVITE_REDIS_URL, the edge, the batcher, analytics."""
    base = f"http://{shown_host(args.host)}:{args.port}"
    settings = Settings.from_env(default_registration_url=f"{base}/demo/register")
    configure_logging(settings.log_format)
    embedded: EmbeddedRedis | None = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir)
        settings = settings.with_redis_url(embedded.start())
    watchdog = Watchdog(SHUTDOWN_WATCHDOG_S)
    if embedded is not None:
        watchdog.at_forced_exit(embedded.stop)
    try:
        factory = _all_in_one_factory(settings)
        announce(banner(settings, base, private=embedded is not None), settings.log_format)
        edge_url_file = settings.data_dir / EDGE_URL_FILE
        edge_url_file.write_text(base + "\n")
        try:
            serve(factory, args.host, args.port, 1, args.server, settings.log_format, watchdog)
        finally:
            edge_url_file.unlink(missing_ok=True)
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


_TOKENS = {"admin": (ADMIN_TOKEN_FILE, "INVITE_ADMIN_TOKEN"),
           "hook": (HOOK_TOKEN_FILE, "INVITE_HOOK_TOKEN"),
           "events": (EVENTS_TOKEN_FILE, "INVITE_EVENTS_TOKEN")}


def _token_shown(settings: Settings, role: str) -> str:
    """A token as the banner may show it: in full only when this start generated it and a person
    reads the output (a terminal); otherwise where it is."""
    token = getattr(settings.tokens, role)[0]
    file_name, variable = _TOKENS[role]
    if role in settings.tokens.from_environment:
        return f"from {variable}"
    if file_name in settings.generated and sys.stdout.isatty():
        return f"{token}  (new; also in {settings.data_dir / file_name})"
    return f"in {settings.data_dir / file_name}"


def banner(settings: Settings, base: str, *, private: bool) -> list[str]:
    """What `invite run` prints on start: addresses, where the tokens are, a first link."""
    assert settings.redis_url is not None
    admin_file = settings.data_dir / ADMIN_TOKEN_FILE
    bearer = (
        "$INVITE_ADMIN_TOKEN" if "admin" in settings.tokens.from_environment
        else f"$(cat {admin_file})"
    )
    return [
        "invite-edge is starting",
        f"  edge          {base}",
        f"  dashboard     {base}/dashboard  (analytics: clicks reach it within seconds)",
        f"  redis         {redact_url(settings.redis_url)}"
        f"{'  (private, AOF under the data dir)' if private else ''}",
        f"  data dir      {settings.data_dir}",
        f"  admin token   {_token_shown(settings, 'admin')}",
        f"  hook token    {_token_shown(settings, 'hook')}",
        f"  events token  {_token_shown(settings, 'events')}",
        "Create a first partner and link:",
        f"  curl -X PUT {base}/api/partners/p-1001 -H \"Authorization: Bearer {bearer}\" "
        "-d '{\"type\": \"ib\", \"name\": \"First IB\"}'",
        f"  curl -X POST {base}/api/partners/p-1001/links -H \"Authorization: Bearer {bearer}\" "
        "-d '{\"campaign\": \"launch\"}'",
        "  (or: .venv/bin/invite partner add p-1001 --type ib && "
        ".venv/bin/invite link create p-1001)",
        "Then open the printed url in a browser.",
    ]


def announce(lines: list[str], log_format: str) -> None:
    """The banner as text, or as one JSON log line when INVITE_LOG_FORMAT=json."""
    if log_format == "json":
        log.info("%s", "; ".join(line.strip() for line in lines))
    else:
        print("\n" + "\n".join(lines) + "\n", flush=True)


def _all_in_one_factory(settings: Settings) -> AppFactory:
    try:
        from analytics.all_in_one import create_all_in_one_app
    except ImportError:
        print(f"note: {ANALYTICS_EXTRA}; running the edge without the click pipeline", flush=True)
        return partial(create_app, settings)
    return partial(create_all_in_one_app, settings)


def run_edge(args: argparse.Namespace) -> int:
    """`invite edge`: the redirector and the admin API, on INVITE_REDIS_URL or `invite run`'s."""
    settings = _with_redis(Settings.from_env())
    serve(partial(create_app, settings), args.host, args.port, args.workers, args.server,
          settings.log_format)
    return 0


def run_analytics(args: argparse.Namespace) -> int:
    """`invite analytics`: the API and dashboard (and the batcher, with the embedded engine)."""
    settings = Settings.from_env()
    try:
        from analytics.all_in_one import create_analytics_only_app
    except ImportError:
        raise CliError(ANALYTICS_EXTRA) from None
    if settings.analytics.embedded and not settings.redis_url:
        if running_url(settings.data_dir) is not None:
            raise CliError(f"`invite run` is using {settings.data_dir} (its analytics are on "
                           "its own port): stop it, or set INVITE_DATA_DIR to another directory")
        raise CliError("the embedded engine runs the batcher in this process, which reads the "
                       "click stream: set INVITE_REDIS_URL=redis://host:6379/0")
    # One process: the embedded engine's data dir admits no other.
    serve(partial(create_analytics_only_app, settings), args.host, args.port, 1, "uvicorn",
          settings.log_format)
    return 0


def migrate_schema(args: argparse.Namespace) -> int:
    """`invite migrate`: create or upgrade the ClickHouse schema."""
    settings = Settings.from_env()
    try:
        from analytics.clickhouse import open_clickhouse
        from analytics.retention import migrate_with_retention
        from analytics.schema import MIGRATIONS
    except ImportError:
        raise CliError(ANALYTICS_EXTRA) from None
    print(f"migrating {redact_url(settings.analytics.clickhouse_url)}", flush=True)
    client = open_clickhouse(settings.analytics.clickhouse_url)
    try:
        applied = migrate_with_retention(client, settings.analytics.clicks_retention_days)
    finally:
        client.close()
    latest = max(migration.version for migration in MIGRATIONS)
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))}; schema at version {latest}")
    else:
        print(f"schema already at version {latest}; nothing to do")
    print(f"raw clicks are kept {settings.analytics.clicks_retention_days} days "
          "(INVITE_CLICKS_RETENTION_DAYS)")
    return 0


def run_batcher(args: argparse.Namespace) -> int:
    """`invite batcher`: the streams into ClickHouse, its metrics on --host/--port."""
    settings = _with_redis(Settings.from_env())
    try:
        from prometheus_client import CollectorRegistry, start_http_server

        from analytics.pipeline import run_batcher as run_pipeline
    except ImportError:
        raise CliError(ANALYTICS_EXTRA) from None
    configure_logging(settings.log_format)
    registry = CollectorRegistry()
    if args.port:
        start_http_server(args.port, args.host, registry)
        print(f"batcher metrics on http://{args.host}:{args.port}/metrics", flush=True)
    stats = asyncio.run(run_pipeline(settings, registry=registry))
    print(f"batcher stopped: {stats.inserted} clicks inserted, {stats.duplicates} duplicates "
          f"skipped, {stats.dead_letters} dead letters")
    return 0


def _with_redis(settings: Settings) -> Settings:
    """The settings on INVITE_REDIS_URL, else on the private Redis of a running `invite run`."""
    if settings.redis_url:
        return settings
    url = running_url(settings.data_dir)
    if url is None:
        raise CliError(NO_REDIS)
    return settings.with_redis_url(url)
