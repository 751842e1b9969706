"""The `invite` command: servers, and operator commands on partners and links."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import httpx
import orjson

from edge.cli.embedded_redis import EmbeddedRedis, running_url
from edge.cli.launch import SERVERS, serve
from edge.config import Settings
from edge.errors import (
    ConfigError,
    CTraderAuthFailed,
    CTraderError,
    CTraderNotConfigured,
    CTraderUnavailable,
    InviteError,
)
from edge.logs import configure_logging
from edge.redis_client import open_redis
from edge.registry.links import DestinationPolicy
from edge.registry.partners import PARTNER_TYPES, PartnerRegistry, check_partner_id
from edge.sso.ctrader import CTraderClient, CTraderUser
from edge.sso.jobs import JobStore

APP_FACTORY = "edge.app:create_app"
EDGE_URL_FILE = "edge.url"  # where `invite run` tells the other commands its address
ALL_IN_ONE_FACTORY = "analytics.all_in_one:create_all_in_one_app"
ANALYTICS_FACTORY = "analytics.all_in_one:create_analytics_only_app"
ANALYTICS_EXTRA = (
    "the analytics extra is not installed: pip install 'invite-edge[analytics]' "
    "(make install does)"
)


class CliError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"invite: {message} (see `{self.prog} --help`)\n")


def _server_args(parser: argparse.ArgumentParser, workers: bool) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument("--server", choices=SERVERS, default="uvicorn",
                        help="HTTP server (default uvicorn: measured faster for the edge, "
                        "docs/benchmarks.md)")
    if workers:
        parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")


def build_parser() -> Parser:
    parser = Parser(prog="invite", description="invite-edge: referral links for cTrader Invite.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = commands.add_parser(
        "run", help="all-in-one: Redis (private unless INVITE_REDIS_URL) and the edge"
    )
    _server_args(run, workers=False)
    edge = commands.add_parser("edge", help="the redirector and admin API")
    _server_args(edge, workers=True)
    analytics = commands.add_parser(
        "analytics", help="analytics API and dashboard (and the batcher, when embedded)"
    )
    analytics.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    analytics.add_argument("--port", type=int, default=8001, help="port (default 8001)")
    batcher = commands.add_parser(
        "batcher", help="click stream → ClickHouse (its metrics on --host/--port)"
    )
    batcher.add_argument("--host", default="127.0.0.1", help="metrics address (default 127.0.0.1)")
    batcher.add_argument("--port", type=int, default=9102,
                         help="metrics port, GET /metrics (default 9102; 0 disables)")
    commands.add_parser("migrate", help="create or upgrade the ClickHouse schema (idempotent)")

    partner = commands.add_parser("partner", help="manage partners")
    partner_cmds = partner.add_subparsers(dest="action", required=True, parser_class=Parser)
    add = partner_cmds.add_parser("add", help="create or update a partner")
    add.add_argument("partner_id", metavar="PARTNER_ID")
    add.add_argument("--parent", help="parent partnerId (multi-level IB)")
    add.add_argument("--type", choices=PARTNER_TYPES)
    add.add_argument("--name")
    add.add_argument("--status", choices=("active", "suspended"))
    add.add_argument("--destination", help="registration URL for this partner's links")
    show = partner_cmds.add_parser("show", help="print a partner")
    show.add_argument("partner_id", metavar="PARTNER_ID")

    link = commands.add_parser("link", help="manage links")
    link_cmds = link.add_subparsers(dest="action", required=True, parser_class=Parser)
    create = link_cmds.add_parser("create", help="create a short link for a partner")
    create.add_argument("partner_id", metavar="PARTNER_ID")
    create.add_argument("--campaign")
    create.add_argument("--sub-id")
    create.add_argument("--alias", help="vanity code, e.g. spring-promo")
    create.add_argument("--destination", help="URL on an allowed host")
    create.add_argument("--base-url", default=None,
                        help="public base URL printed in the link (default INVITE_PUBLIC_URL)")

    _ctrader_commands(commands)
    return parser


def _positive_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _partner_id(text: str) -> str:
    try:
        return check_partner_id(text)
    except InviteError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _ctrader_commands(commands: Any) -> None:
    ctrader = commands.add_parser(
        "ctrader", help="the partner identifier of cTrader ID users; the outbox's dead letters"
    )
    ctrader_cmds = ctrader.add_subparsers(dest="action", required=True, parser_class=Parser)
    partner = ctrader_cmds.add_parser(
        "partner", help="set, read or delete a user's partnerId in cTrader"
    )
    partner_cmds = partner.add_subparsers(dest="operation", required=True, parser_class=Parser)
    for operation, what in (("set", "assign a partner to a user"),
                            ("get", "show the user's partner"),
                            ("delete", "remove the user's partner")):
        sub = partner_cmds.add_parser(operation, help=what)
        user = sub.add_mutually_exclusive_group(required=True)
        user.add_argument("--user-id", type=_positive_id, help="cTrader ID userId")
        user.add_argument("--ctid-trader-account-id", type=_positive_id,
                          help="a trading account of the user")
        if operation == "set":
            sub.add_argument("--partner-id", type=_partner_id, required=True,
                             help="the partnerId to assign")
    dead = ctrader_cmds.add_parser(
        "dead-letters", help="outbox jobs cTrader or a webhook refused, newest first"
    )
    dead.add_argument("--limit", type=_positive_id, default=20, help="how many (default 20)")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = dispatch(args)
    except (ConfigError, CliError) as exc:
        print(f"invite: {exc}", file=sys.stderr)
        code = 2
    except InviteError as exc:
        print(f"invite: {exc.message}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "ctrader" and args.action == "partner":
        return asyncio.run(ctrader_partner_command(args))
    if args.command == "ctrader":
        return asyncio.run(dead_letters_command(args))
    if args.command == "run":
        return run_all(args)
    if args.command == "migrate":
        return migrate_schema()
    if args.command == "batcher":
        return run_batcher_command(args)
    if args.command == "analytics":
        return run_analytics(args)
    if args.command == "edge":
        settings = Settings.from_env()
        if not settings.redis_url:
            url = running_url(settings.data_dir)
            if url is None:
                raise CliError("INVITE_REDIS_URL is not set and no `invite run` Redis is up: "
                               "set INVITE_REDIS_URL=redis://host:6379/0")
            os.environ["INVITE_REDIS_URL"] = url
        serve(APP_FACTORY, args.host, args.port, args.workers, args.server)
        return 0
    return asyncio.run(registry_command(args))


def run_all(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not os.environ.get("INVITE_REGISTRATION_URL"):
        shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
        os.environ["INVITE_REGISTRATION_URL"] = f"http://{shown_host}:{args.port}/demo/register"
        settings = Settings.from_env()
    embedded: EmbeddedRedis | None = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir)
        os.environ["INVITE_REDIS_URL"] = embedded.start()
    base = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"  # noqa: S104
    redis_url = os.environ["INVITE_REDIS_URL"]
    print(
        "\ninvite-edge is starting\n"
        f"  edge          {base}\n"
        f"  dashboard     {base}/dashboard  (analytics: clicks reach it within seconds)\n"
        f"  redis         {redis_url}{'  (private, AOF under the data dir)' if embedded else ''}\n"
        f"  data dir      {settings.data_dir}\n"
        f"  admin token   {settings.admin_tokens[0]}\n"
        f"  hook token    {settings.hook_tokens[0]}\n"
        "\nCreate a first partner and link:\n"
        f"  curl -X PUT {base}/api/partners/p-1001 -H 'Authorization: Bearer "
        f"{settings.admin_tokens[0]}' -d '{{\"type\": \"ib\", \"name\": \"First IB\"}}'\n"
        f"  curl -X POST {base}/api/partners/p-1001/links -H 'Authorization: Bearer "
        f"{settings.admin_tokens[0]}' -d '{{\"campaign\": \"launch\"}}'\n"
        "  (or: .venv/bin/invite partner add p-1001 --type ib && "
        ".venv/bin/invite link create p-1001)\n"
        "Then open the printed url in a browser.\n",
        flush=True,
    )
    edge_url_file = settings.data_dir / EDGE_URL_FILE
    edge_url_file.write_text(base + "\n")
    factory = ALL_IN_ONE_FACTORY if _analytics_installed() else APP_FACTORY
    if factory == APP_FACTORY:
        print(f"note: {ANALYTICS_EXTRA}; running the edge without the click pipeline", flush=True)
    try:
        serve(factory, args.host, args.port, 1, args.server)
    finally:
        edge_url_file.unlink(missing_ok=True)
        if embedded is not None:
            embedded.stop()
    return 0


def _running_edge_url(settings: Settings) -> str:
    try:
        return (settings.data_dir / EDGE_URL_FILE).read_text().strip()
    except FileNotFoundError:
        return "http://127.0.0.1:8000"


def _analytics_installed() -> bool:
    try:
        import analytics.all_in_one  # noqa: F401
    except ImportError:
        return False
    return True


def run_analytics(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not _analytics_installed():
        raise CliError(ANALYTICS_EXTRA)
    if settings.clickhouse_url.startswith("chdb://") and not settings.redis_url:
        url = running_url(settings.data_dir)
        if url is not None:
            raise CliError(f"`invite run` is using {settings.data_dir} (its analytics are on "
                           "its own port): stop it, or set INVITE_DATA_DIR to another directory")
        raise CliError("the embedded engine runs the batcher in this process, which reads the "
                       "click stream: set INVITE_REDIS_URL=redis://host:6379/0")
    # One process: the embedded engine's data dir admits no other.
    serve(ANALYTICS_FACTORY, args.host, args.port, 1, "uvicorn")
    return 0


def migrate_schema() -> int:
    settings = Settings.from_env()
    try:
        from analytics.clickhouse import open_clickhouse, redact_url
        from analytics.schema import MIGRATIONS, migrate
    except ImportError:
        raise CliError(ANALYTICS_EXTRA) from None
    print(f"migrating {redact_url(settings.clickhouse_url)}", flush=True)
    client = open_clickhouse(settings.clickhouse_url)
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


def run_batcher_command(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        from prometheus_client import CollectorRegistry, start_http_server

        from analytics.pipeline import run_batcher
    except ImportError:
        raise CliError(ANALYTICS_EXTRA) from None
    configure_logging(settings.log_format)
    redis_url = settings.redis_url or running_url(settings.data_dir)
    if redis_url is None:
        raise CliError("INVITE_REDIS_URL is not set and no `invite run` Redis is up: "
                       "set INVITE_REDIS_URL=redis://host:6379/0")
    registry = CollectorRegistry()
    if args.port:
        start_http_server(args.port, args.host, registry)
        print(f"batcher metrics on http://{args.host}:{args.port}/metrics", flush=True)
    stats = asyncio.run(run_batcher(
        settings, redis_url=redis_url, consumer=settings.batcher_consumer,
        batch_max_rows=settings.batcher_batch_rows,
        flush_interval_s=settings.batcher_flush_ms / 1000,
        max_deliveries=settings.batcher_max_deliveries,
        claim_idle_ms=settings.batcher_claim_idle_ms,
        partners_interval_s=settings.partners_sync_s, registry=registry,
    ))
    print(f"batcher stopped: {stats.inserted} clicks inserted, {stats.duplicates} duplicates "
          f"skipped, {stats.dead_letters} dead letters")
    return 0


def _redis_url(settings: Settings) -> str:
    url = settings.redis_url or running_url(settings.data_dir)
    if url is None:
        raise CliError("no Redis to talk to: start `invite run` first (it starts one), "
                       "or set INVITE_REDIS_URL")
    return url


def _print_json(result: Any) -> None:
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


async def ctrader_partner_command(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    user = CTraderUser(args.user_id, args.ctid_trader_account_id)
    async with httpx.AsyncClient() as http:
        client = CTraderClient.from_settings(settings, http)
        try:
            if args.operation == "set":
                await client.set_partner(user, args.partner_id)
                result: dict[str, Any] = {**user.fields(), "partnerId": args.partner_id}
            elif args.operation == "get":
                result = await client.get_partner(user)
            else:
                await client.delete_partner(user)
                result = {**user.fields(), "partnerId": None}
        except CTraderError as exc:
            print(f"invite: {exc.message}; {_what_to_do(exc)}", file=sys.stderr)
            return 1
    _print_json(result)
    return 0


def _what_to_do(error: CTraderError) -> str:
    if isinstance(error, CTraderNotConfigured):
        return "set the variables named and run the command again"
    if isinstance(error, CTraderAuthFailed):
        return "check INVITE_CTRADER_TOKEN or INVITE_CTRADER_MANAGER_LOGIN/PASSWORD"
    if isinstance(error, CTraderUnavailable):
        return "cTrader is unreachable or busy: run the command again in a while"
    return "check the user id and INVITE_BROKER_CRM_NAME; cTrader will not accept this as is"


async def dead_letters_command(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    redis = open_redis(_redis_url(settings), timeout_s=5.0)
    try:
        jobs = JobStore(redis)
        result = {"queued": await jobs.queued(),
                  "deadLetters": await jobs.dead_letters(args.limit)}
    finally:
        await redis.aclose()
    _print_json(result)
    return 0


async def registry_command(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    redis = open_redis(_redis_url(settings), timeout_s=5.0)
    registry = PartnerRegistry(
        redis, settings.signing_secret, DestinationPolicy(settings.allowed_destinations)
    )
    try:
        result: dict[str, Any]
        if args.command == "partner" and args.action == "add":
            body = {key: value for key, value in {
                "parentPartnerId": args.parent, "type": args.type, "name": args.name,
                "status": args.status, "destination": args.destination,
            }.items() if value is not None}
            partner, _ = await registry.upsert(args.partner_id, body)
            result = partner.to_json()
        elif args.command == "partner":
            result = (await registry.get(args.partner_id)).to_json()
        else:
            body = {key: value for key, value in {
                "campaign": args.campaign, "subId": args.sub_id, "alias": args.alias,
                "destination": args.destination,
            }.items() if value is not None}
            link = await registry.create_link(args.partner_id, body)
            base = args.base_url or settings.public_url or _running_edge_url(settings)
            result = link.to_json(base.rstrip("/"))
    finally:
        await redis.aclose()
    _print_json(result)
    return 0
