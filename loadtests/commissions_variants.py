"""Changed SQL for the ledger's full recompute, timed against the statements as they are
(`make bench-commissions` with `--prototypes`), each proposal on its own and then together.

Each variant computes the month's trade and CPA lines into `commissions_staging` (nothing is
swapped into the ledger) from the statements `analytics.commissions.lines` builds, rewritten by
pattern; a rewrite that no longer finds its pattern reports the variant as not applicable rather
than timing the same SQL twice. Its lines are checked against those of the SQL as it is: the
same count and the same checksum over every column but `computed_at` (and `line_id`, when the
variant changes how ids are made).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from analytics.clickhouse import Client
from analytics.commissions.lines import Scope, cpa_lines, trade_lines
from analytics.commissions.months import end_ms, start_ms
from analytics.commissions.schema import LINE_NAMES
from loadtests.commissions_data import forest, say
from loadtests.commissions_profile import measured, statements

DAY_MS: Final = 86_400_000
STAGING: Final = "commissions_staging"
Statements = list[tuple[str, dict[str, Any]]]
Rewrite = Callable[[str], str]

_COLLAPSE: Final = re.compile(
    r"FROM invite\.events_credited WHERE (.*?) GROUP BY event_id, [^H]*?HAVING sum\(sign\) > 0",
    re.S)
_REVERSALS: Final = "FROM invite.events FINAL WHERE event_type = 'reversal'"
_TERMS: Final = re.compile(
    r"SELECT f\.user_id AS user_id.*?WHERE pl\.has_cpa = 1 AND f\.amount >= "
    r"pl\.cpa_min_first_deposit", re.S)
_START: Final = "fromUnixTimestamp64Milli({start:Int64}, 'UTC')"
_END: Final = "fromUnixTimestamp64Milli({end:Int64}, 'UTC')"
_ID: Final = re.compile(r"lower\(hex\(substring\(SHA256\(concat\((.*?)\)\), 1, 16\)\)\)")
_ID_PART: Final = re.compile(r"toString\(length\((.+?)\)\), ':', \1(?:, |$)")


class NotApplicable(Exception):
    pass


def _sub(pattern: re.Pattern[str], replacement: str | Callable[[re.Match[str]], str],
         sql: str) -> str:
    changed, count = pattern.subn(replacement, sql)
    if not count:
        raise NotApplicable(f"pattern {pattern.pattern[:50]!r} not found")
    return changed


def collapse_final(sql: str) -> str:
    """events_credited read with FINAL (CollapsingMergeTree) instead of GROUP BY every column
    HAVING sum(sign) > 0: the same rows, as crediting writes a cancel and a new row."""
    if "HAVING sum(sign) > 0" not in sql:
        return sql
    return _sub(_COLLAPSE, r"FROM invite.events_credited FINAL WHERE \1", sql)


def reversals_plain(sql: str) -> str:
    """The reversals read without FINAL over all of `events` (events never change: the copies
    of one event are the same row, DISTINCT keeps one)."""
    if _REVERSALS not in sql:
        return sql
    return sql.replace(_REVERSALS, "FROM (SELECT DISTINCT event_id, ts, reverses FROM "
                                   "invite.events WHERE event_type = 'reversal') WHERE 1")


def cpa_month_only(sql: str) -> str:
    """A month's CPA lines from the users whose CPA can fall in it (first deposit before the
    month's end, and in it or with a window reaching into it) and their trades before the
    month's end, not from every user's every trade: the qualifying trade of a line inside the
    month is before its end, and so are the trades summed up to it."""
    if "first_deposits" not in sql or "{users:" in sql:
        return sql
    found = _TERMS.search(sql)
    if found is None:
        raise NotApplicable("the CPA terms were not found")
    terms = (f"{found.group(0)} AND f.ts < {_END} AND (f.ts >= {_START} "
             f"OR window_end > {_START})")
    sql = sql.replace(found.group(0), terms)
    marker = "AND user_id IN (SELECT user_id FROM first_deposits) GROUP BY"
    if marker not in sql:
        raise NotApplicable("the CPA trades were not found")
    candidates = f"AND ts < {_END} AND user_id IN (SELECT user_id FROM ({terms})) GROUP BY"  # noqa: S608
    return sql.replace(marker, candidates, 1)


def sip_ids(sql: str) -> str:
    """Line ids as sipHash128 of the parts as separate arguments (no string to build: each
    argument is hashed on its own, so no part can spell another's)."""
    def rebuild(match: re.Match[str]) -> str:
        parts = [m.group(1) for m in _ID_PART.finditer(match.group(1))]
        if not parts:
            raise NotApplicable("the line id's parts were not found")
        return f"lower(hex(sipHash128({', '.join(parts)})))"
    return _sub(_ID, rebuild, sql)


@dataclass
class Variant:
    name: str
    by_day: bool = True  # the trade lines a day at a time, as recompute_period does
    rewrites: tuple[Rewrite, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    partner_ranges: int = 0  # > 0: the month's trade lines in ranges of source partners
    same_ids: bool = True


FAST: Final = (collapse_final, reversals_plain)
NO_REPLACE: Final = {"optimize_on_insert": 0}
VARIANTS: Final = (
    Variant("the month's trade lines in one statement", by_day=False),
    Variant("one statement, FINAL collapse, reversals without FINAL", by_day=False,
            rewrites=FAST),
    Variant("the same + optimize_on_insert = 0", by_day=False, rewrites=FAST,
            settings=NO_REPLACE),
    Variant("the same + sipHash128 ids", by_day=False, rewrites=(*FAST, sip_ids),
            settings=NO_REPLACE, same_ids=False),
    Variant("the same + CPA from the users it can fall on", by_day=False,
            rewrites=(cpa_month_only, *FAST, sip_ids), settings=NO_REPLACE, same_ids=False),
    Variant("the same in 8 ranges of source partners", by_day=False, partner_ranges=8,
            rewrites=(cpa_month_only, *FAST, sip_ids), settings=NO_REPLACE, same_ids=False),
)


def _partner_ranges(count: int) -> list[tuple[str, str]]:
    """Ranges [low, high) of partner ids (the first column of events_credited's sort key)."""
    ids = sorted(forest()[0])
    step = -(-len(ids) // count)
    bounds = [ids[i] for i in range(0, len(ids), step)] + ["\U0010ffff"]
    bounds[0] = ""
    return list(itertools.pairwise(bounds))


def _in_range(sql: str) -> str:
    """The trade statements' credited rows limited to a range of partners."""
    return sql.replace("event_type = 'trade' AND partner_id != ''",
                       "event_type = 'trade' AND partner_id != '' AND partner_id >= "
                       "{low:String} AND partner_id < {high:String}")


def variant_statements(variant: Variant, period: str) -> Statements:
    first, after = start_ms(period), end_ms(period)
    found: Statements = []
    if variant.by_day:
        found += [trade_lines(Scope(day, min(day + DAY_MS, after)), STAGING)
                  for day in range(first, after, DAY_MS)]
    elif variant.partner_ranges:
        sql, parameters = trade_lines(Scope(first, after), STAGING)
        found += [(_in_range(sql), {**parameters, "low": low, "high": high})
                  for low, high in _partner_ranges(variant.partner_ranges)]
    else:
        found.append(trade_lines(Scope(first, after), STAGING))
    found.append(cpa_lines(Scope(first, after), STAGING))
    rewritten: Statements = []
    for sql, parameters in found:
        for rewrite in variant.rewrites:
            sql = rewrite(sql)
        rewritten.append((sql, parameters))
    return rewritten


def checksum(client: Client, with_ids: bool, source: str = f"invite.{STAGING}",
             parameters: dict[str, Any] | None = None) -> tuple[int, int]:
    columns = [name for name in LINE_NAMES
               if name != "computed_at" and (with_ids or name != "line_id")]
    row = client.query(f"SELECT count(), sum(cityHash64({', '.join(columns)})) FROM {source}",  # noqa: S608
                       parameters=parameters or {}).result_rows[0]
    return int(row[0]), int(row[1])


def ledger_reference(client: Client, period: str) -> dict[str, Any]:
    """The month's lines as recompute_period left them in the ledger (adjustments aside)."""
    source = "invite.commissions FINAL WHERE period = {p:String} AND adjusts = ''"
    lines, with_ids = checksum(client, True, source, {"p": period})
    _, without_ids = checksum(client, False, source, {"p": period})
    return {"lines": lines, "checksum": with_ids, "checksum_without_ids": without_ids}


def run_variant(client: Client, variant: Variant, period: str, currency: str,
                reference: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"variant": variant.name}
    try:
        found = variant_statements(variant, period)
    except NotApplicable as exc:
        return {**result, "not_applicable": str(exc)}
    client.command(f"TRUNCATE TABLE invite.{STAGING}")
    with measured(variant.name) as phase:
        for sql, parameters in found:
            client.command(sql, parameters={**parameters, "currency": currency},
                           settings=variant.settings)
    statements(client, phase)
    lines, with_ids = checksum(client, True)
    _, without_ids = checksum(client, False)
    result.update(seconds=round(phase.seconds, 1), cpu_s=round(phase.cpu_s, 1), lines=lines,
                  rss_peak_mb=round(phase.rss_peak_mb), engine_peak_mb=round(phase.engine_peak_mb),
                  checksum=with_ids, checksum_without_ids=without_ids,
                  statements=[(s.label, s.count, round(s.total_s, 1), round(s.cpu_s, 1),
                               round(s.peak_mb)) for s in phase.statements])
    key = "checksum" if variant.same_ids else "checksum_without_ids"
    result["same_lines"] = lines == reference["lines"] and result[key] == reference[key]
    say(f"  {variant.name}: {phase.seconds:.1f} s, {phase.cpu_s:.1f} s CPU, {lines:,} lines, "
        f"the ledger's lines: {result['same_lines']}")
    return result


def count_costs(client: Client, period: str) -> dict[str, Any]:
    """What recompute_period's final count costs (FINAL over the month's lines) against the
    count of the lines just written to the staging table."""
    found: dict[str, Any] = {}
    for name, sql in (("count FINAL on the ledger",
                       "SELECT count() FROM invite.commissions FINAL WHERE period = {p:String}"),
                      ("count of the staging table",
                       f"SELECT count() FROM invite.{STAGING}")):  # noqa: S608
        with measured(name) as phase:
            value = client.query(sql, parameters={"p": period}).result_rows[0][0]
        found[name] = {"seconds": round(phase.seconds, 2), "lines": int(value)}
    return found


def run_all(client: Client, period: str, currency: str) -> list[dict[str, Any]]:
    say("prototypes: the recompute's statements rewritten")
    reference = ledger_reference(client, period)
    results = [run_variant(client, variant, period, currency, reference)
               for variant in VARIANTS]
    counts = count_costs(client, period)
    results.append({"variant": "the line count", "counts": counts})
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = ["Prototypes (the month's trade and CPA lines into the staging table, nothing "
             "swapped in; compared with the lines recompute_period wrote):", "",
             "| variant | s | CPU s | lines | same lines | peak RSS MB | CH peak MB |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for r in results:
        if "counts" in r:
            continue
        if "not_applicable" in r:
            lines.append(f"| {r['variant']} | n/a: {r['not_applicable']} | | | | | |")
            continue
        same = "yes" if r["same_lines"] else "**no**"
        lines.append(f"| {r['variant']} | {r['seconds']:,.1f} | {r['cpu_s']:,.1f} | "
                     f"{r['lines']:,} | {same} | {r['rss_peak_mb']:,} | {r['engine_peak_mb']:,} |")
    for r in results:
        for name, value in r.get("counts", {}).items():
            lines.append(f"\n{name}: {value['seconds']:.2f} s ({value['lines']:,} lines)")
    return "\n".join(lines)
