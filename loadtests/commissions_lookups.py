"""Prototypes for the incremental update (`make bench-commissions --prototypes`): where
`Ledger.apply_users` reads, timed as it is and changed, on the same users and the same state.

- the lines of the new trades alone (by event id), as a pass that only saw new trades could
  compute them;
- the users' lines computed into `commissions_scratch` as `lines.py` builds them, and with the
  recompute's rewrites (reversals without FINAL over all of `events`, FINAL collapse);
- the two comparisons with the ledger (`commissions FINAL WHERE user_id IN …`), against the
  ledger (sorted by partner, so every granule is read) and against a copy of it sorted by user
  first, in granules of 1,024 rows (`bench.ledger_by_user`: what keeping one beside the ledger
  would buy, and what filling it costs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from analytics.clickhouse import Client
from analytics.commissions.ledger import SAME, Ledger
from analytics.commissions.lines import Scope, cpa_lines, trade_lines
from analytics.commissions.schema import LINE_COLUMNS
from loadtests.commissions_data import say
from loadtests.commissions_profile import measured, statements
from loadtests.commissions_variants import collapse_final, reversals_plain

SCRATCH: Final = "commissions_scratch"
_BY_USER_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS bench.ledger_by_user ("
    + ", ".join(f"{name} {type_name}" for name, type_name in LINE_COLUMNS)
    + ") ENGINE = ReplacingMergeTree(computed_at, is_deleted) PARTITION BY period "
    "ORDER BY (user_id, partner_id, line_id) SETTINGS index_granularity = 1024")
# What apply_users compares, as counts (nothing written), from `{ledger}`.
_CHANGED: Final = (
    "SELECT count() FROM invite.commissions_scratch WHERE period NOT IN {{closed:Array(String)}} "  # noqa: S608
    f"AND ({SAME}) NOT IN (SELECT {SAME} FROM {{ledger}} FINAL "
    "WHERE user_id IN {{users:Array(String)}} AND adjusts = '')")
_GONE: Final = (
    "SELECT count() FROM {ledger} FINAL WHERE user_id IN {{users:Array(String)}} "
    "AND adjusts = '' AND period NOT IN {{closed:Array(String)}} AND (line_id, period) NOT IN "
    "(SELECT line_id, period FROM invite.commissions_scratch)")


def _timed(client: Client, name: str, sql: str, parameters: dict[str, Any]) -> dict[str, Any]:
    with measured(name) as phase:
        value = client.query(sql, parameters=parameters).result_rows[0][0]
    statements(client, phase)
    say(f"  {name}: {phase.seconds:.2f} s, {phase.cpu_s:.1f} s CPU")
    return {"step": name, "seconds": round(phase.seconds, 2), "cpu_s": round(phase.cpu_s, 1),
            "engine_peak_mb": round(phase.engine_peak_mb), "result": int(value),
            "read_rows": sum(s.read_rows for s in phase.statements)}


def _scratch(client: Client, name: str, users: list[str], currency: str,
             rewrite: Callable[[str], str] | None) -> dict[str, Any]:
    client.command(f"TRUNCATE TABLE invite.{SCRATCH}")
    scope = Scope(users=tuple(users))
    with measured(name) as phase:
        for sql, parameters in (trade_lines(scope, SCRATCH), cpa_lines(scope, SCRATCH)):
            if rewrite is not None:
                sql = rewrite(sql)
            client.command(sql, parameters={**parameters, "currency": currency})
    statements(client, phase)
    count = f"SELECT count() FROM invite.{SCRATCH}"  # noqa: S608
    lines = int(client.query(count).result_rows[0][0])
    say(f"  {name}: {phase.seconds:.2f} s, {phase.cpu_s:.1f} s CPU, {lines:,} lines")
    return {"step": name, "seconds": round(phase.seconds, 2), "cpu_s": round(phase.cpu_s, 1),
            "engine_peak_mb": round(phase.engine_peak_mb), "result": lines,
            "read_rows": sum(s.read_rows for s in phase.statements),
            "statements": [(s.label, round(s.total_s, 2), round(s.cpu_s, 1))
                           for s in phase.statements]}


def _new_trades_only(events: list[str]) -> Callable[[str], str]:
    """The trade lines of these events alone (the users' other trades left out)."""
    def rewrite(sql: str) -> str:
        marker = "AND user_id IN {users:Array(String)} GROUP BY"
        if "'rebate'" not in sql or marker not in sql:
            return sql
        return reversals_plain(sql.replace(marker, "AND event_id IN {events:Array(String)} "
                                                   "GROUP BY", 1))
    return rewrite


def _new_lines(client: Client, events: list[str], users: list[str],
               currency: str) -> dict[str, Any]:
    client.command(f"TRUNCATE TABLE invite.{SCRATCH}")
    sql, parameters = trade_lines(Scope(users=tuple(users)), SCRATCH)
    name = "the new trades' lines alone (by event id), reversals without FINAL"
    with measured(name) as phase:
        client.command(_new_trades_only(events)(sql),
                       parameters={**parameters, "events": events, "currency": currency})
    statements(client, phase)
    count = f"SELECT count() FROM invite.{SCRATCH}"  # noqa: S608
    lines = int(client.query(count).result_rows[0][0])
    say(f"  {name}: {phase.seconds:.2f} s, {phase.cpu_s:.1f} s CPU, {lines:,} lines")
    return {"step": name, "seconds": round(phase.seconds, 2), "cpu_s": round(phase.cpu_s, 1),
            "engine_peak_mb": round(phase.engine_peak_mb), "result": lines,
            "read_rows": sum(s.read_rows for s in phase.statements)}


def run_all(client: Client, users: list[str], events: list[str],
            currency: str) -> list[dict[str, Any]]:
    say(f"prototypes: apply_users' reads for {len(users):,} users")
    results = [
        _new_lines(client, events, users, currency),
        _scratch(client, "their lines computed, as is", users, currency, None),
        _scratch(client, "their lines computed, reversals without FINAL", users, currency,
                 reversals_plain),
        _scratch(client, "their lines computed, reversals without FINAL + FINAL collapse",
                 users, currency, lambda sql: reversals_plain(collapse_final(sql))),
    ]  # the last leaves every line of the users in the scratch table, as apply_users does
    client.command(_BY_USER_DDL)
    client.command("TRUNCATE TABLE bench.ledger_by_user")
    with measured("filling the copy sorted by user") as phase:
        client.command("INSERT INTO bench.ledger_by_user SELECT * FROM invite.commissions")
    results.append({"step": phase.name, "seconds": round(phase.seconds, 2),
                    "cpu_s": round(phase.cpu_s, 1)})
    parameters = {"users": users, "closed": []}
    for ledger in ("invite.commissions", "bench.ledger_by_user"):
        results.append(_timed(client, f"lines changed or new, against {ledger}",
                              _CHANGED.format(ledger=ledger), parameters))
        results.append(_timed(client, f"lines no longer held, against {ledger}",
                              _GONE.format(ledger=ledger), parameters))
    # The ledger up to date again, for what is compared with it next.
    Ledger(client, currency).apply_users(users, closed=set())
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = ["Prototypes for apply_users (same users, same state; the comparisons as counts):",
             "", "| step | s | CPU s | CH peak MB | rows read | result rows |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['step']} | {r['seconds']:,.2f} | {r['cpu_s']:,.1f} | "
                     f"{r.get('engine_peak_mb', '')} | {r.get('read_rows', 0):,} | "
                     f"{r.get('result', '')} |")
    return "\n".join(lines)
