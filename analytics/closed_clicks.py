"""The days of a question's clicks that have ended, kept once computed (schema migration 16): a
summary or breakdown asked again reads them as a few stored rows and asks the views only for
today (analytics.kept_days).

A question's clicks are rows of (t, key, outcome, counts, visitor state) read from views and raw
clicks and aggregated by the outer statement (analytics.rollups.union_sql). Counts add up and
visitor states merge, so the rows of the ended days are summed and merged once per key and
outcome (`closed_clicks`) and read back as one branch of that union.
"""

from __future__ import annotations

from datetime import datetime

from clickhouse_connect.driver.client import Client

from analytics.filters import ClickFilter
from analytics.kept_days import closed_end, keep
from analytics.rollups import Closed, Closer, Source, union_sql
from analytics.schema import CLOSED_CLICKS as TABLE
from analytics.schema import CLOSED_CLICKS_ENTRIES as ENTRIES
from analytics.schema import DATABASE


def closed_part(client: Client, source: Source, f: ClickFilter, now: datetime | None = None,
                found: dict[str, Closed | None] | None = None) -> Closed | None:
    """The stored rows of the range's ended days, computed and stored first if needed; None
    when the range has none to keep or the store cannot be used. `found`: what this was
    already asked for (by what it would read), answered again without looking."""
    end = closed_end(f, now)
    if end is None:
        return None
    sql, parameters = union_sql(source, f.start, end)
    asked = repr((sql, sorted((name, str(value)) for name, value in parameters.items())))
    if found is not None and asked in found:
        return found[asked]
    kept = keep(client, (TABLE, ENTRIES), sql, parameters, (
        f"INSERT INTO {DATABASE}.{TABLE} (entry, attempt, t, key, outcome, n_clicks, "  # noqa: S608
        "n_human, visitor_state) SELECT {closed_entry:String}, {closed_attempt:String}, t, "
        "key, outcome, sum(n_clicks), sum(n_human), "
        "uniqCombinedMergeState(14)(visitor_state) FROM ({rows}) GROUP BY t, key, outcome"
    ), f.start, end)
    closed = None if kept is None else Closed(*kept, end)
    if found is not None:
        found[asked] = closed
    return closed


def closer(client: Client) -> Closer:
    """closed_part on this client, for the statements' builders (analytics.queries); what it
    finds is looked up once (an answer's statements may read the same days)."""
    found: dict[str, Closed | None] = {}
    return lambda source, f: closed_part(client, source, f, found=found)

