"""The IB tree: a partner's children (the roots for the admin), each with its subtree's totals for
the filter's range, so that the dashboard opens the tree level by level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics import rollups
from analytics.events import queries as funnel_events
from analytics.filters import ClickFilter, filter_json
from analytics.names import names
from analytics.queries import (
    BY_PEOPLE,
    CLICK_COUNTS,
    CLICK_METRICS,
    QUERY_SETTINGS,
    Query,
    rows,
    select_final,
)
from analytics.rollups import SUBTREE_KEY, raw_where, subtrees_source
from edge.errors import InvalidInput
from edge.spelling import is_ascii_digits

DEFAULT_TREE_LIMIT: Final = 50
MAX_TREE_LIMIT: Final = 500
# Children read from the partners table at most; past this the answer says how many there are.
MAX_CHILDREN: Final = 20_000
# The figures of the funnel events take their roots as `keys` (see figures_by_key).
_FIGURES_KEY: Final = SUBTREE_KEY.replace("{roots:", "{keys:")
NO_FIGURES: Final = funnel_events.Figures()


@dataclass(frozen=True)
class Child:
    partner_id: str
    name: str
    type: str
    status: str
    level: int
    child_count: int = 0


def parse_tree_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_TREE_LIMIT
    if not is_ascii_digits(raw) or not 1 <= int(raw) <= MAX_TREE_LIMIT:
        raise InvalidInput(f"limit {raw[:20]!r} must be a whole number from 1 to {MAX_TREE_LIMIT}")
    return int(raw)


def children_query(parent_id: str | None) -> Query:
    """The partners whose parent is `parent_id` (None: the roots), as the registry has them now."""
    return Query(
        select_final("partner_id, name, type, status, level", "partners",
                     "parent_id = {parent:String}",
                     "ORDER BY partner_id LIMIT {cap:UInt32}"),
        {"parent": parent_id or "", "cap": MAX_CHILDREN},
    )


def child_counts_query(partner_ids: list[str]) -> Query:
    return Query(
        select_final("parent_id, count()", "partners", "parent_id IN {ids:Array(String)}",
                     "GROUP BY parent_id"),
        {"ids": partner_ids},
    )


def subtree_clicks_query(f: ClickFilter, roots: list[str], *, visitors: bool) -> Query:
    """Credited clicks, people and (with `visitors`) unique visitors of each root's subtree."""
    union, parameters = rollups.union_sql(
        subtrees_source(f, roots), f.start, f.end, visitors=visitors
    )
    metrics = CLICK_METRICS if visitors else CLICK_COUNTS
    sql = f"SELECT key, {metrics} FROM ({union}) GROUP BY key ORDER BY {BY_PEOPLE}"  # noqa: S608
    return Query(sql + QUERY_SETTINGS, parameters)


def subtree_registrations_query(f: ClickFilter, roots: list[str]) -> Query:
    scoped = ClickFilter(start=f.start, end=f.end, campaign=f.campaign,
                         scope_partner_id=f.scope_partner_id)
    where, parameters = raw_where(
        scoped, "event_type = 'registration'", "partner_id != ''", "key IN {roots:Array(String)}"
    )
    return Query(
        select_final(f"arrayJoin({rollups.CHAIN}) AS key, count()", "conversions", where,
                     "GROUP BY key"),
        {**parameters, "roots": roots},
    )


def _children(client: Client, parent_id: str | None) -> list[Child]:
    found = [Child(str(pid), str(name), str(kind), str(status), int(level))
             for pid, name, kind, status, level in rows(client, children_query(parent_id))]
    if not found:
        return []
    counts = {str(pid): int(n) for pid, n in
              rows(client, child_counts_query([c.partner_id for c in found]))}
    return [Child(c.partner_id, c.name, c.type, c.status, c.level, counts.get(c.partner_id, 0))
            for c in found]


def _ranked(client: Client, f: ClickFilter, children: list[Child], limit: int) -> tuple[
    list[Child], dict[str, tuple[int, int, int]]
]:
    """The `limit` busiest children (people first, then clicks, then id) and their counts."""
    ids = [c.partner_id for c in children]
    if len(ids) <= limit:
        shown = ids
    else:
        counts = {str(key): (int(total), int(humans)) for key, total, humans in
                  rows(client, subtree_clicks_query(f, ids, visitors=False))}
        ids.sort(key=lambda pid: (-counts.get(pid, (0, 0))[1], -counts.get(pid, (0, 0))[0], pid))
        shown = ids[:limit]
    metrics = {str(key): (int(total), int(humans), int(visitors)) for key, total, humans, visitors
               in rows(client, subtree_clicks_query(f, shown, visitors=True))}
    by_id = {c.partner_id: c for c in children}
    order = sorted(shown, key=lambda pid: (-metrics.get(pid, (0, 0, 0))[1],
                                           -metrics.get(pid, (0, 0, 0))[0], pid))
    return [by_id[pid] for pid in order], metrics


def _path(client: Client, f: ClickFilter) -> list[dict[str, str]]:
    """The opened partner's ancestors and itself, root first; a partner token's stop at its own
    partner (nothing above it is shown)."""
    if f.partner_id is None:
        return []
    found = rows(client, Query(
        select_final("ancestors", "partners", "partner_id = {partner_id:String}"),
        {"partner_id": f.partner_id},
    ))
    chain = [*(str(a) for a in (found[0][0] if found else [])), f.partner_id]
    if f.scope_partner_id is not None:
        chain = chain[chain.index(f.scope_partner_id):] if f.scope_partner_id in chain else [
            f.partner_id]
    named = names(client, chain)
    return [{"partnerId": pid, "name": named.get(pid, "")} for pid in chain]


def tree(client: Client, f: ClickFilter, limit: int) -> dict[str, Any]:
    """The children of the filter's partner (the roots when it has none), busiest first."""
    children = _children(client, f.partner_id)
    shown, metrics = _ranked(client, f, children, limit) if children else ([], {})
    ids = [c.partner_id for c in shown]
    registrations: dict[str, int] = {}
    figures: dict[str, funnel_events.Figures] = {}
    if ids:
        registrations = {str(key): int(n) for key, n in
                         rows(client, subtree_registrations_query(f, ids))}
        scoped = ClickFilter(start=f.start, end=f.end, campaign=f.campaign,
                             scope_partner_id=f.scope_partner_id)
        figures = funnel_events.figures_by_key(client, scoped, _FIGURES_KEY, ids)
    listed = []
    for child in shown:
        total, humans, visitors = metrics.get(child.partner_id, (0, 0, 0))
        listed.append({
            "partnerId": child.partner_id, "name": child.name, "type": child.type,
            "status": child.status, "level": child.level, "childCount": child.child_count,
            "clicks": total, "humanClicks": humans, "botClicks": total - humans,
            "uniqueVisitors": visitors,
            "registrations": registrations.get(child.partner_id, 0),
            **figures.get(child.partner_id, NO_FIGURES).to_json(),
        })
    return {
        "filter": filter_json(f),
        "path": _path(client, f),
        "childCount": len(children),
        "limit": limit,
        "children": listed,
    }
