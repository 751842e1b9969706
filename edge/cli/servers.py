"""The server commands: `invite run`, `edge`, `analytics`, `batcher`, `migrate`.

This is the one place on the edge's side that starts analytics (imported lazily: the analytics
extra may not be installed).
"""

from __future__ import annotations

import argparse
import asyncio
from functools import partial

from edge.app import create_app
from edge.cli.embedded_redis import EmbeddedRedis, running_url
from edge.cli.launch import EDGE_URL_FILE, AppFactory, serve
from edge.config import Settings
from edge.errors import CliError
from edge.logs import configure_logging, redact_url

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
    embedded: EmbeddedRedis | None = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir)
        settings = settings.with_redis_url(embedded.start())
    try:
        factory = _all_in_one_factory(settings)
        assert settings.redis_url is not None
        print(
            "\ninvite-edge is starting\n"
            f"  edge          {base}\n"
            f"  dashboard     {base}/dashboard  (analytics: clicks reach it within seconds)\n"
            f"  redis         {settings.redis_url}"
            f"{'  (private, AOF under the data dir)' if embedded else ''}\n"
            f"  data dir      {settings.data_dir}\n"
            f"  admin token   {settings.tokens.admin[0]}\n"
            f"  hook token    {settings.tokens.hook[0]}\n"
            "\nCreate a first partner and link:\n"
            f"  curl -X PUT {base}/api/partners/p-1001 -H 'Authorization: Bearer "
            f"{settings.tokens.admin[0]}' -d '{{\"type\": \"ib\", \"name\": \"First IB\"}}'\n"
            f"  curl -X POST {base}/api/partners/p-1001/links -H 'Authorization: Bearer "
            f"{settings.tokens.admin[0]}' -d '{{\"campaign\": \"launch\"}}'\n"
            "  (or: .venv/bin/invite partner add p-1001 --type ib && "
            ".venv/bin/invite link create p-1001)\n"
            "Then open the printed url in a browser.\n",
            flush=True,
        )
        edge_url_file = settings.data_dir / EDGE_URL_FILE
        edge_url_file.write_text(base + "\n")
        try:
            serve(factory, args.host, args.port, 1, args.server)
        finally:
            edge_url_file.unlink(missing_ok=True)
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


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
    serve(partial(create_app, settings), args.host, args.port, args.workers, args.server)
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
    serve(partial(create_analytics_only_app, settings), args.host, args.port, 1, "uvicorn")
    return 0


def migrate_schema(args: argparse.Namespace) -> int:
    """`invite migrate`: create or upgrade the ClickHouse schema."""
    settings = Settings.from_env()
    try:
        from analytics.clickhouse import open_clickhouse
        from analytics.schema import MIGRATIONS, migrate
    except ImportError:
        raise CliError(ANALYTICS_EXTRA) from None
    print(f"migrating {redact_url(settings.analytics.clickhouse_url)}", flush=True)
    client = open_clickhouse(settings.analytics.clickhouse_url)
    try:
        applied = migrate(client)
    finally:
        client.close()
    latest = max(migration.version for migration in MIGRATIONS)
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))}; schema at version {latest}")
    else:
        print(f"schema already at version {latest}; nothing to do")
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
