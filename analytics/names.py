"""Partners as analytics knows them: whether an id is known at all, and names beside ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from clickhouse_connect.driver.client import Client

from analytics.queries import Query, rows, select_final
from edge.errors import NotFound

# `invite.partners` is a copy of the registry made within seconds of a change (partners_sync);
# a partner whose clicks are recorded is known even before its row arrives.
MAX_NAMED: Final = 1000


class PartnerNotFound(NotFound):
    code = "unknown_partner"


def known_queries(partner_id: str) -> tuple[Query, Query]:
    """Whether the partners table has the id, and whether any click names it (one primary-key
    range of `clicks`)."""
    parameters = {"partner_id": partner_id}
    return (
        Query(select_final("count()", "partners", "partner_id = {partner_id:String}"), parameters),
        Query(select_final("1", "clicks", "partner_id = {partner_id:String}", "LIMIT 1"),
              parameters),
    )


def check_known(client: Client, partner_id: str) -> None:
    """Raise PartnerNotFound (404) for an id neither the registry's copy nor any click knows: a
    typo answers "unknown partner", not zeros."""
    in_partners, in_clicks = known_queries(partner_id)
    if int(rows(client, in_partners)[0][0]) > 0 or rows(client, in_clicks):
        return
    raise PartnerNotFound(
        f"partnerId {partner_id!r} is unknown: no partner with this id exists "
        "(see PUT /api/partners/{partnerId}, or GET /api/partners to find one)"
    )


def names_query(partner_ids: Sequence[str]) -> Query:
    return Query(
        select_final("partner_id, name", "partners", "partner_id IN {ids:Array(String)}"),
        {"ids": list(partner_ids)[:MAX_NAMED]},
    )


def names(client: Client, partner_ids: Sequence[str]) -> dict[str, str]:
    """Each known id's name ('' when it has none); unknown ids are left out."""
    ids = [partner_id for partner_id in partner_ids if partner_id]
    if not ids:
        return {}
    return {str(pid): str(name) for pid, name in rows(client, names_query(ids))}
