"""The `invite` command: parse, build the settings once, dispatch; exit 2 for what the user must
change (with one line saying what), 1 for what failed on the way."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from edge.cli import commissions, importer, operations, servers
from edge.cli.parser import build_parser
from edge.config import Settings
from edge.errors import CliError, ConfigError, InviteError


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
    server_commands = {
        "run": servers.run_all, "edge": servers.run_edge, "analytics": servers.run_analytics,
        "batcher": servers.run_batcher, "migrate": servers.migrate_schema,
    }
    if args.command in server_commands:
        return server_commands[args.command](args)  # each builds the settings it needs
    settings = Settings.from_env()
    if args.command == "commissions":
        return commissions.recompute_command(settings, args.period)
    if args.command == "events":
        return importer.import_events(settings, args.file, args.skip_bad)
    if args.command == "ctrader" and args.action == "partner":
        return asyncio.run(operations.ctrader_partner_command(settings, args))
    if args.command == "ctrader":
        return asyncio.run(operations.dead_letters_command(settings, args))
    return asyncio.run(operations.registry_command(settings, args))
