"""Questions about a partner's place rather than its figures: when its tokens were revoked,
and whether a partner is in another's subtree (analytics/auth.py, analytics/api.py)."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from analytics.queries import Query, rows, select_final


def tokens_not_before(client: Client, partner_id: str) -> int:
    """When the partner's analytics tokens were last revoked (ms; 0: never)."""
    query = Query(
        select_final("max(toUnixTimestamp64Milli(tokens_not_before))", "partners",
                "partner_id = {partner_id:String}"),
        {"partner_id": partner_id},
    )
    return int(rows(client, query)[0][0] or 0)


def in_subtree_queries(root_partner_id: str, partner_id: str) -> tuple[Query, Query]:
    """Whether `partner_id` is below `root_partner_id`: in the partners table, else in the ancestor
    snapshot of any of its clicks (the table may lag behind the registry, or the tree changed)."""
    below = "partner_id = {partner_id:String} AND has(ancestors, {root:String})"
    parameters = {"root": root_partner_id, "partner_id": partner_id}
    return (
        Query(select_final("count()", "partners", below), parameters),
        Query(select_final("1", "clicks", below, "LIMIT 1"), parameters),
    )


def in_subtree(client: Client, root_partner_id: str, partner_id: str) -> bool:
    if partner_id == root_partner_id:
        return True
    in_partners, in_clicks = in_subtree_queries(root_partner_id, partner_id)
    return int(rows(client, in_partners)[0][0]) > 0 or bool(rows(client, in_clicks))
