"""The `invite` command line: every command, its arguments and its help."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, NoReturn

from edge.cli.launch import SERVERS
from edge.errors import InviteError
from edge.registry.model import LINK_STATUSES, PARTNER_STATUSES, PARTNER_TYPES, check_partner_id
from edge.registry.paging import MAX_LIMIT, MAX_SEARCH_LENGTH, decode_cursor
from edge.spelling import is_ascii_digits, whole_number


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"invite: {message} (see `{self.prog} --help`)\n")


def _server_args(parser: argparse.ArgumentParser, workers: bool) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument("--server", choices=SERVERS, default="uvicorn",
                        help="HTTP server (default uvicorn: faster for the edge, "
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
    add.add_argument("--status", choices=PARTNER_STATUSES)
    add.add_argument("--destination", help="registration URL for this partner's links")
    add.add_argument("--plan", metavar="PLAN_ID",
                     help="its commission plan (default: its nearest ancestor's)")
    show = partner_cmds.add_parser("show", help="print a partner")
    show.add_argument("partner_id", metavar="PARTNER_ID")
    listing = partner_cmds.add_parser(
        "list", help="list partners in id order: search, filter by parent or status, page"
    )
    under = listing.add_mutually_exclusive_group()
    under.add_argument("--parent", type=_partner_id, help="only the direct children of this one")
    under.add_argument("--roots", action="store_true", help="only partners without a parent")
    listing.add_argument("--q", type=_search, metavar="TEXT",
                         help="id or name containing TEXT, in any case")
    listing.add_argument("--status", choices=PARTNER_STATUSES)
    _page_args(listing, "partners")

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
    links = link_cmds.add_parser("list", help="list a partner's links, newest first")
    links.add_argument("partner_id", metavar="PARTNER_ID", type=_partner_id)
    links.add_argument("--status", choices=LINK_STATUSES)
    links.add_argument("--base-url", default=None,
                       help="public base URL printed in the links (default INVITE_PUBLIC_URL)")
    _page_args(links, "links")

    events = commands.add_parser("events", help="the broker's funnel events")
    events_cmds = events.add_subparsers(dest="action", required=True, parser_class=Parser)
    load = events_cmds.add_parser(
        "import", help="back-fill events from a .csv or .ndjson file (resumable, idempotent)"
    )
    load.add_argument("file", metavar="FILE", type=Path, help="a .csv (header of the API's "
                      "field names) or .ndjson file")
    load.add_argument("--skip-bad", metavar="OUT", type=Path,
                      help="write bad lines (with the reasons) to OUT and go on")

    commissions = commands.add_parser("commissions", help="the commissions ledger")
    commission_cmds = commissions.add_subparsers(dest="action", required=True,
                                                 parser_class=Parser)
    recompute = commission_cmds.add_parser(
        "recompute", help="compute an open month's lines again from the events (progress shown)")
    recompute.add_argument("--period", required=True, metavar="YYYY-MM", type=_period,
                           help="the month, e.g. 2026-11")

    _ctrader_commands(commands)
    return parser


def _page_args(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("--limit", type=_limit, default=50,
                        help=f"at most this many (1-{MAX_LIMIT}, default 50)")
    parser.add_argument("--cursor", type=lambda text: _cursor(kind, text),
                        help="the next page: the cursor the previous one printed")
    parser.add_argument("--json", action="store_true",
                        help="print the page as the API gives it, not a table")


def _limit(text: str) -> int:
    try:
        return whole_number(text, "--limit", 1, MAX_LIMIT)
    except InviteError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def _search(text: str) -> str:
    if len(text) > MAX_SEARCH_LENGTH:
        raise argparse.ArgumentTypeError(f"longer than {MAX_SEARCH_LENGTH} characters")
    return text


def _cursor(kind: str, text: str) -> str:
    try:
        position = decode_cursor(kind, text)
    except InviteError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    if kind == "links" and not (is_ascii_digits(position) and int(position) >= 1):
        raise argparse.ArgumentTypeError("this cursor was not printed by `invite link list`")
    return text


def _period(text: str) -> str:
    if re.fullmatch(r"(20[0-9]{2}|21[0-9]{2})-(0[1-9]|1[0-2])", text) is None:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a month written YYYY-MM")
    return text


def _positive_id(text: str) -> int:
    if not is_ascii_digits(text) or int(text) < 1:
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
