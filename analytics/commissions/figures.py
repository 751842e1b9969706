"""The `commissions` figure of the marketing questions: what the ledger pays on the filter's
referrals (their events' lines at every level), in the filter's range.

A line belongs where its event does: to the event's partner (`source_partner_id`), its downline
and campaign, the registration click's country and so on. A partner token sees only what its own
subtree earns: an upline's override on its referrals is not its business.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics.commissions.schema import DATABASE
from analytics.filters import ClickFilter

ZERO: Final = Decimal(0)
_BUCKETS: Final = {"hour": "toStartOfHour(ts)", "day": "toStartOfDay(ts)"}
_SUBTREE: Final = (f"(SELECT partner_id FROM {DATABASE}.partners FINAL WHERE partner_id = "
                   "{{{param}:String}} OR has(ancestors, {{{param}:String}}))")


def _lines(f: ClickFilter, *, need_events: bool) -> tuple[str, dict[str, Any]]:
    """The filter's lines: ts, amount, source partner and (when asked) their event's id."""
    conditions = ["is_deleted = 0", "ts >= {start:DateTime64(3, 'UTC')}",
                  "ts < {end:DateTime64(3, 'UTC')}"]
    parameters: dict[str, Any] = {"start": f.start, "end": f.end}
    if f.partner_id is not None:
        parameters["partner_id"] = f.partner_id
        conditions.append(
            "source_partner_id IN " + _SUBTREE.format(param="partner_id") if f.include_downline
            else "source_partner_id = {partner_id:String}")
    if f.scope_partner_id is not None:
        parameters["scope_partner_id"] = f.scope_partner_id
        conditions.append("partner_id IN " + _SUBTREE.format(param="scope_partner_id"))
    source = ", if(reverses != '', reverses, event_id) AS source_event" if need_events else ""
    return (f"SELECT ts, amount, source_partner_id{source} FROM {DATABASE}.commissions FINAL "
            f"WHERE {' AND '.join(conditions)}", parameters)


def _query(f: ClickFilter, key: str | None, bucket: str) -> tuple[str, dict[str, Any]]:
    """sum(amount) per (key, bucket); `key` a column of the credited events, or None."""
    join = key not in (None, "partner_id") or f.campaign is not None
    lines, parameters = _lines(f, need_events=join)
    if not join:
        column = "source_partner_id" if key == "partner_id" else "''"
        return (f"SELECT {column} AS k, toUnixTimestamp({bucket}) AS b, sum(amount) "
                f"FROM ({lines}) GROUP BY k, b", parameters)
    campaign = ""
    if f.campaign is not None:
        campaign = " AND campaign = {campaign:String}"
        parameters["campaign"] = f.campaign
    events = (f"SELECT event_id, any({key or 'partner_id'}) AS k FROM {DATABASE}.events_credited "
              f"WHERE event_id IN (SELECT source_event FROM lines){campaign} "
              "GROUP BY event_id HAVING sum(sign) > 0")
    column = "e.k" if key is not None else "''"
    return (f"WITH lines AS ({lines}) SELECT {column} AS k, toUnixTimestamp({bucket}) AS b, "
            f"sum(l.amount) FROM lines AS l INNER JOIN ({events}) AS e "
            "ON e.event_id = l.source_event GROUP BY k, b", parameters)


def _sums(client: Client, f: ClickFilter, key: str | None,
          bucket: str) -> list[tuple[str, int, Decimal]]:
    sql, parameters = _query(f, key, bucket)
    rows = client.query(sql, parameters=parameters).result_rows
    return [(str(k), int(b), Decimal(amount)) for k, b, amount in rows]


def total(client: Client, f: ClickFilter) -> Decimal:
    return sum((amount for _, _, amount in _sums(client, f, None, "toDateTime(0, 'UTC')")), ZERO)


def by_bucket(client: Client, f: ClickFilter, interval: str) -> dict[int, Decimal]:
    return {b: amount for _, b, amount in _sums(client, f, None, _BUCKETS[interval])}


def by_key(client: Client, f: ClickFilter, column: str,
           keys: Sequence[str] | None) -> dict[str, Decimal]:
    """Per value of a credited events' column (partner_id, campaign, country…) among `keys`
    (None: every value)."""
    if keys is not None and not keys:
        return {}
    wanted = None if keys is None else set(keys)
    sums = _sums(client, f, column, "toDateTime(0, 'UTC')")
    return {k: amount for k, _, amount in sums if wanted is None or k in wanted}
