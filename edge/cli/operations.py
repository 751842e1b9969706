"""The operator commands: partners and links in the registry, cTrader partner identifiers, and
the outbox's dead letters."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx
import orjson

from edge.cli.embedded_redis import running_url
from edge.cli.launch import running_edge_url
from edge.cli.tables import LINK_COLUMNS, PARTNER_COLUMNS, text_table
from edge.config import Settings
from edge.errors import (
    CliError,
    CTraderAuthFailed,
    CTraderError,
    CTraderNotConfigured,
    CTraderUnavailable,
)
from edge.redis_client import open_redis
from edge.registry.destinations import DestinationPolicy
from edge.registry.edits import KEEP, LinkEdit, PartnerEdit
from edge.registry.paging import LinkQuery, Page, PartnerQuery, decode_cursor, page_json
from edge.registry.partners import PartnerRegistry
from edge.sso.ctrader import CTraderClient, CTraderUser
from edge.sso.jobs import JobStore

OPERATOR_TIMEOUT_S = 5.0


def redis_url_of(settings: Settings) -> str:
    """INVITE_REDIS_URL, else the private Redis of a running `invite run` on the data dir."""
    url = settings.redis_url or running_url(settings.data_dir)
    if url is None:
        raise CliError("no Redis to talk to: start `invite run` first (it starts one), "
                       "or set INVITE_REDIS_URL")
    return url


def _print_json(result: Any) -> None:
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


async def registry_command(settings: Settings, args: argparse.Namespace) -> int:
    """`invite partner add|show|list`, `invite link create|list`."""
    redis = open_redis(redis_url_of(settings), timeout_s=OPERATOR_TIMEOUT_S)
    registry = PartnerRegistry(
        redis, settings.signing_secret, DestinationPolicy(settings.edge.allowed_destinations)
    )
    base = (args.base_url if "base_url" in args else None) or settings.edge.public_url or (
        running_edge_url(settings.data_dir)
    )
    try:
        result: dict[str, Any]
        if args.action == "list":
            return await _list_command(registry, args, base.rstrip("/"))
        if args.command == "partner" and args.action == "add":
            edit = PartnerEdit(
                parent_id=KEEP if args.parent is None else args.parent, name=args.name,
                type=args.type, status=args.status,
                destination=KEEP if args.destination is None else args.destination,
                plan_id=KEEP if args.plan is None else args.plan,
            )
            partner, _ = await registry.upsert(args.partner_id, edit)
            result = partner.to_json()
        elif args.command == "partner":
            result = (await registry.get(args.partner_id)).to_json()
        else:
            link = await registry.create_link(args.partner_id, LinkEdit(
                campaign=args.campaign, sub_id=args.sub_id, alias=args.alias,
                destination=args.destination,
            ))
            result = link.to_json(base.rstrip("/"))
    finally:
        await redis.aclose()
    _print_json(result)
    return 0


async def _list_command(registry: PartnerRegistry, args: argparse.Namespace, base: str) -> int:
    """`invite partner list`, `invite link list`: a table, or the API's JSON with --json."""
    page: Page[Any]
    if args.command == "partner":
        page = await registry.list_partners(PartnerQuery(
            parent_id=args.parent, roots=args.roots, search=args.q or None, status=args.status,
            limit=args.limit, after=decode_cursor("partners", args.cursor) if args.cursor else None,
        ))
        items = [summary.to_json() for summary in page.items]
        columns = PARTNER_COLUMNS
    else:
        page = await registry.list_links(args.partner_id, LinkQuery(
            status=args.status, limit=args.limit,
            before=int(decode_cursor("links", args.cursor)) if args.cursor else None,
        ))
        items, columns = [link.to_json(base) for link in page.items], LINK_COLUMNS
    if args.json:
        _print_json(page_json(page, items))
        return 0
    what = "partners" if args.command == "partner" else "links"
    print(text_table(columns, items) if items else f"no {what}")
    if page.next_cursor:
        print(f"more {what}: add --cursor {page.next_cursor}")
    return 0


async def ctrader_partner_command(settings: Settings, args: argparse.Namespace) -> int:
    """`invite ctrader partner set|get|delete`: exit 1 with cTrader's errorCode and what to do."""
    user = CTraderUser(args.user_id, args.ctid_trader_account_id)
    async with httpx.AsyncClient() as http:
        client = CTraderClient.from_settings(settings.ctrader, http)
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


async def dead_letters_command(settings: Settings, args: argparse.Namespace) -> int:
    """`invite ctrader dead-letters`: newest first, and how many jobs are queued."""
    redis = open_redis(redis_url_of(settings), timeout_s=OPERATOR_TIMEOUT_S)
    try:
        jobs = JobStore(redis)
        result = {"queued": await jobs.queued(),
                  "deadLetters": await jobs.dead_letters(args.limit)}
    finally:
        await redis.aclose()
    _print_json(result)
    return 0
