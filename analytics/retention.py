"""How long raw clicks are kept: a TTL on `invite.clicks` (INVITE_CLICKS_RETENTION_DAYS).

Whole day partitions are dropped once all their clicks are older than that (`ttl_only_drop_parts`:
no rewriting of parts); the views keep their totals, since they count clicks when inserted.
"""

from __future__ import annotations

import logging
import re

from analytics.schema import DATABASE, CommandClient, migrate

log = logging.getLogger("invite.retention")

_TTL = re.compile(r"TTL toDateTime\(ts\) \+ toIntervalDay\((\d+)\)")


def retention_days(client: CommandClient) -> int | None:
    """The days `clicks` keeps now; None when it keeps clicks forever."""
    ddl = str(client.command(
        f"SELECT create_table_query FROM system.tables "  # noqa: S608 - our own constant
        f"WHERE database = '{DATABASE}' AND name = 'clicks'"
    ))
    found = _TTL.search(ddl)
    return int(found.group(1)) if found else None


def apply_retention(client: CommandClient, days: int) -> bool:
    """Set the clicks' TTL to `days` if it differs; True when it changed."""
    if retention_days(client) == days:
        return False
    client.command(f"ALTER TABLE {DATABASE}.clicks MODIFY SETTING ttl_only_drop_parts = 1")
    client.command(
        f"ALTER TABLE {DATABASE}.clicks MODIFY TTL toDateTime(ts) + toIntervalDay({int(days)}) "
        "SETTINGS materialize_ttl_after_modify = 0"
    )
    # Applied to the parts already there; with whole-part drops this reads no rows.
    client.command(f"ALTER TABLE {DATABASE}.clicks MATERIALIZE TTL")
    log.info("raw clicks are kept %d days (INVITE_CLICKS_RETENTION_DAYS)", days)
    return True


def migrate_with_retention(client: CommandClient, days: int) -> list[int]:
    """The schema migrations (analytics.schema.migrate), then the clicks' retention."""
    applied = migrate(client)
    apply_retention(client, days)
    return applied
