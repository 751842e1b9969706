"""What the funnel events add to the marketing questions: accounts, KYC, first deposits, money,
traders, lots, broker revenue; and the funnel of both cohorts.

Every figure is read from the credited events' per-user rows (analytics.events.rollups: whole
days and hours from the views, the ends from `events_by_time`): the sums add up every row's
signed sums, the distinct counts (KYC'd users, depositors, active traders) are the users with a
live event, so a re-credited or reversed event never counts twice. Events no partner is credited
with yet are left out of every figure and counted apart (`unattributed_events`), for the admin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics import kept_days, series_cache
from analytics.events import rollups
from analytics.filters import ClickFilter
from analytics.queries import QUERY_SETTINGS, Query
from analytics.rollups import Closed, partner_conditions, raw_where
from analytics.schema import CLOSED_EVENTS, CLOSED_EVENTS_ENTRIES

DATABASE: Final = "invite"
ZERO: Final = Decimal(0)
CENT: Final = Decimal("0.01")
# Keys whose figures of ended days are kept for every value (links: the rows of the top codes
# are read from them whichever codes are on top, and they are looked up beside the top codes'
# search). The others' are kept for the keys asked (partners: read from events_credited, every
# partner's would cost seconds to compute).
EVERY_KEY_KEPT: Final = frozenset({"code"})
# A day at most left to read from the views (today beside kept days, a series' buckets not
# stored, a day's question) is read summed as a whole.
TODAY_AT_MOST: Final = timedelta(days=1)
STEPS: Final = ("visitors", "registrations", "kyc", "ftd", "active")
COHORTS: Final = ("clicks", "events")


def money(value: Decimal) -> str:
    """An amount as the API writes it: exact, with at least cents ("1250.50", "0.12345")."""
    value = Decimal(value)
    cents = value.quantize(CENT)
    return format(cents if cents == value else value.normalize(), "f")


def quantity(value: Decimal) -> str:
    """Lots as the API writes them: exact, without trailing zeros ("12.5")."""
    value = Decimal(value).normalize()
    return format(value, "f") if value else "0"


@dataclass(frozen=True)
class Figures:
    accounts: int = 0
    kyc_approved: int = 0
    first_deposits: int = 0
    first_deposit_amount: Decimal = ZERO
    depositors: int = 0
    deposit_amount: Decimal = ZERO
    withdrawal_amount: Decimal = ZERO
    active_traders: int = 0
    lots: Decimal = ZERO
    broker_revenue: Decimal = ZERO
    commissions: Decimal = field(default=ZERO)  # the ledger's (answers give it to to_json)

    def to_json(self, commissions: Decimal | None = None) -> dict[str, Any]:
        """`commissions`: the ledger's, given apart (else this one's)."""
        return {
            "accounts": self.accounts,
            "kycApproved": self.kyc_approved,
            "firstDeposits": self.first_deposits,
            "firstDepositAmount": money(self.first_deposit_amount),
            "depositors": self.depositors,
            "depositAmount": money(self.deposit_amount),
            "withdrawalAmount": money(self.withdrawal_amount),
            "activeTraders": self.active_traders,
            "lots": quantity(self.lots),
            "brokerRevenue": money(self.broker_revenue),
            "commissions": money(self.commissions if commissions is None else commissions),
        }


# Per (key, bucket): the sums over every row, the distinct counts over users with a live event.
# A series without a key ('' in every row) is grouped by the bucket alone: hashing the constant
# too costs a tenth of it.
_FIGURES: Final = (
    "SELECT {key} AS key, toUnixTimestamp(t) AS bucket, "
    "sumIf(n, event_type = 'account_opened'), "
    "uniqExactIf(user_key, event_type = 'kyc_approved' AND n > 0), "
    "sumIf(n_ftd, event_type = 'deposit'), sumIf(n_ftd_amount, event_type = 'deposit'), "
    "uniqExactIf(user_key, event_type = 'deposit' AND n > 0), "
    "sumIf(n_amount, event_type = 'deposit'), sumIf(n_amount, event_type = 'withdrawal'), "
    "uniqExactIf(user_key, event_type = 'trade' AND n > 0), "
    "sumIf(n_lots, event_type = 'trade'), sumIf(n_revenue, event_type = 'trade') "
    "FROM ({rows}) GROUP BY {group}"
)


# With the kept days (analytics.kept_days, table `closed_events`): their rows per key and
# event type, and today's per-user rows summed the same way, merged. (The sums are named apart
# from the per-user rows' `n`…, which the users' condition reads.)
_BY_TYPE: Final = (
    "key, event_type, uniqExactIfState(user_key, n > 0) AS users, sum(n) AS e_n, "
    "sum(n_ftd) AS e_ftd, sum(n_amount) AS e_amount, sum(n_ftd_amount) AS e_ftd_amount, "
    "sum(n_lots) AS e_lots, sum(n_revenue) AS e_revenue"
)
_KEPT: Final = (
    "SELECT key, event_type, users, n AS e_n, n_ftd AS e_ftd, n_amount AS e_amount, "
    "n_ftd_amount AS e_ftd_amount, n_lots AS e_lots, n_revenue AS e_revenue "
    f"FROM {DATABASE}.closed_events "
    "WHERE entry = {closed_entry:String} AND attempt = {closed_attempt:String}"
)
_KEEP: Final = (
    f"INSERT INTO {DATABASE}.closed_events (entry, attempt, key, event_type, users, n, n_ftd, "
    "n_amount, n_ftd_amount, n_lots, n_revenue) SELECT {closed_entry:String}, "
    "{closed_attempt:String}, key, event_type, uniqExactIfState(user_key, n > 0), sum(n), "
    "sum(n_ftd), sum(n_amount), sum(n_ftd_amount), sum(n_lots), sum(n_revenue) FROM ({rows}) "
    "GROUP BY key, event_type"
)
_MERGED: Final = (
    "SELECT key, 0 AS bucket, sumIf(e_n, event_type = 'account_opened'), "
    "uniqExactIfMergeIf(users, event_type = 'kyc_approved'), "
    "sumIf(e_ftd, event_type = 'deposit'), sumIf(e_ftd_amount, event_type = 'deposit'), "
    "uniqExactIfMergeIf(users, event_type = 'deposit'), "
    "sumIf(e_amount, event_type = 'deposit'), sumIf(e_amount, event_type = 'withdrawal'), "
    "uniqExactIfMergeIf(users, event_type = 'trade'), "
    "sumIf(e_lots, event_type = 'trade'), sumIf(e_revenue, event_type = 'trade') "
    "FROM ({parts}) GROUP BY key"
)


def _where(key: str, keys: Sequence[str] | None) -> tuple[tuple[str, ...], dict[str, Any]]:
    if keys is None:
        return (), {}
    return (f"{key} IN {{keys:Array(String)}}",), {"keys": list(keys)}


def figures_query(
    f: ClickFilter, key: str = "''", interval: str | None = None,
    keys: Sequence[str] | None = None, *, views: bool = True,
    dirty: Mapping[str, rollups.Ranges] | None = None, closed: Closed | None = None,
) -> Query:
    """The figures of the filter's credited events, per value of `key` (a column) and bucket
    (`views`, `dirty`: see analytics.events.rollups.per_user_rows). `closed` (no buckets): the
    stored figures of the range's first days, the rest read."""
    where, parameters = _where(key, keys)
    if closed is not None:
        parts = [_KEPT + (" AND key IN {keys:Array(String)}" if keys is not None else "")]
        parameters = {**parameters, "closed_entry": closed.entry,
                      "closed_attempt": closed.attempt}
        if closed.end < f.end:
            rows, parameters = rollups.per_user_rows(
                replace(f, start=closed.end), key, None, where, parameters, dirty=dirty)
            parts.append(f"SELECT {_BY_TYPE} FROM ({rows}) GROUP BY key, event_type")
        sql = _MERGED.format(parts=" UNION ALL ".join(parts))
        return Query(sql + QUERY_SETTINGS, parameters)
    rows, parameters = rollups.per_user_rows(f, key, interval, where, parameters,
                                             views=views, dirty=dirty)
    by_bucket = key == "''" and interval is not None
    sql = _FIGURES.format(rows=rows, key="''" if by_bucket else "key",
                          group="bucket" if by_bucket else "key, bucket")
    return Query(sql + QUERY_SETTINGS, parameters)


def _figures(row: Sequence[Any]) -> Figures:
    (accounts, kyc, ftds, ftd_amount, depositors, deposits, withdrawals, traders, lots,
     revenue) = row
    return Figures(
        accounts=int(accounts), kyc_approved=int(kyc), first_deposits=int(ftds),
        first_deposit_amount=Decimal(ftd_amount), depositors=int(depositors),
        deposit_amount=Decimal(deposits), withdrawal_amount=Decimal(withdrawals),
        active_traders=int(traders), lots=Decimal(lots), broker_revenue=Decimal(revenue),
    )


@dataclass(frozen=True)
class KeptDays:
    """What kept_days found: the stored figures of the range's ended days, or None."""

    closed: Closed | None


def kept_days_of(client: Client, f: ClickFilter, key: str = "''",
                 keys: Sequence[str] | None = None) -> KeptDays:
    """The stored figures of the range's ended days for read_figures (looked up or computed
    first): for every value of a key kept whole (EVERY_KEY_KEPT), so before its keys are
    known."""
    # One partner's own events are a few primary-key ranges: cheaper read than checked.
    own = f.partner_id is not None and not f.include_downline
    return KeptDays(None if own else _closed(client, f, key, keys))


def read_figures(
    client: Client, f: ClickFilter, key: str = "''", interval: str | None = None,
    keys: Sequence[str] | None = None, kept: KeptDays | None = None,
) -> Sequence[Sequence[Any]]:
    """figures_query's rows (analytics.events.rollups.read); `kept`: kept_days_of's, when it
    was asked already."""
    asked = None if interval is not None else kept or kept_days_of(client, f, key, keys)
    closed = asked.closed if asked is not None else None

    def build(dirty: Mapping[str, rollups.Ranges] | None) -> tuple[str, dict[str, Any]]:
        query = figures_query(f, key, interval, keys, dirty=dirty, closed=closed)
        return query.sql, query.parameters

    # No view to look at; or a day at most left to read (today beside the kept days, a
    # series' buckets not stored): its rows summed while read cost less than looking at the
    # views' parts before and after.
    left = f.end - (closed.end if closed is not None else f.start)
    if rollups.reads_raw(f, key) or left <= TODAY_AT_MOST:
        sql, parameters = build(None)
        return client.query(sql, parameters=parameters).result_rows
    return rollups.read(client, build)


def _closed(client: Client, f: ClickFilter, key: str, keys: Sequence[str] | None
            ) -> Closed | None:
    """The stored figures of the range's ended days (analytics.kept_days), computed
    with every row summed per user while read (exact without looking at the views' parts)."""
    end = kept_days.closed_end(f)
    if end is None:
        return None
    where, parameters = _where(key, None if key in EVERY_KEY_KEPT else keys)
    rows, parameters = rollups.per_user_rows(replace(f, end=end), key, None, where, parameters)
    kept = kept_days.keep(client, (CLOSED_EVENTS, CLOSED_EVENTS_ENTRIES), rows, parameters,
                              _KEEP, f.start, end)
    return None if kept is None else Closed(*kept, end)


def figures(client: Client, f: ClickFilter) -> Figures:
    rows = read_figures(client, f)
    return _figures(rows[0][2:]) if rows else Figures()


def figures_by_bucket(client: Client, f: ClickFilter, interval: str) -> dict[int, Figures]:
    """Per bucket; closed buckets come from analytics.series_cache while their views have not
    changed."""
    return series_cache.by_bucket(
        client, f, interval, "events", rollups.bucket_tables(f, interval),
        lambda within: {int(row[1]): _figures(row[2:])
                        for row in read_figures(client, within, interval=interval)},
        _encoded, _decoded)


def _encoded(figures: Figures) -> str:
    """A bucket's figures in the order of their fields, comma-separated (a month's hours are
    720 of them to read back: plain text decodes three times faster than JSON)."""
    return ",".join(str(getattr(figures, name)) for name, _ in _FIELDS)


def _decoded(text: str) -> Figures:
    """A stored bucket's figures, exactly: counts as ints, amounts as Decimals."""
    return Figures(*[kind(value) for (_, kind), value in zip(  # type: ignore[arg-type]
        _FIELDS, text.split(","), strict=True)])


_FIELDS: Final = tuple((f.name, int if f.type in (int, "int") else Decimal)
                       for f in fields(Figures))


# Keys with thousands of values (partners, link codes): their figures are asked for the top keys
# once the clicks name them; for the others (countries, campaigns, sub-IDs: tens to hundreds),
# every value costs no more than twenty and can be asked beside the clicks' question (asking
# 9,364 link codes cost 204 ms against 71 for the top 20; 41 sub-IDs 83 against 80).
MANY_KEYS: Final = frozenset({"partner_id", "code"})


def figures_by_key(
    client: Client, f: ClickFilter, column: str, keys: Sequence[str] | None,
    kept: KeptDays | None = None,
) -> dict[str, Figures]:
    """Per value of `column` among `keys` (None: every value); `kept`: see read_figures."""
    if keys is not None and not keys:
        return {}
    return {str(row[0]): _figures(row[2:])
            for row in read_figures(client, f, column, keys=keys, kept=kept)}


def unattributed_events(client: Client, f: ClickFilter) -> int:
    """Events in the range whose user no registration names yet (the admin's question)."""
    where, parameters = raw_where(f, "partner_id = '' AND reversed = 0")
    rows = client.query(
        f"SELECT count() FROM (SELECT event_id FROM {DATABASE}.events_credited WHERE {where} "
        f"GROUP BY event_id HAVING sum(sign) > 0){QUERY_SETTINGS}",
        parameters=parameters,
    ).result_rows
    return int(rows[0][0])


# --- the funnel -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    step: str
    count: int
    rate: float | None  # of the step before; None for the first or after an empty step

    def to_json(self, commissions: Decimal | None = None) -> dict[str, Any]:
        """`commissions`: the ledger's, given apart (else this one's)."""
        return {"step": self.step, "count": self.count, "rate": self.rate}


def steps(counts: Sequence[int]) -> list[Step]:
    result = []
    for index, (name, count) in enumerate(zip(STEPS, counts, strict=True)):
        before = counts[index - 1] if index else 0
        rate = round(count / before, 4) if index and before else None
        result.append(Step(name, count, rate))
    return result


def clicks_cohort_query(f: ClickFilter) -> Query:
    """The registrations whose click was in the range (its UUIDv7 holds the millisecond), and of
    those users how many were ever approved, deposited and traded (up to now).

    The registered users are read once, as the right side of a join with each user's live
    events (`events_by_user`): the engine then filters the left side by their ids as it reads it
    (its join runtime filter), and a user without an event still counts as registered. (An
    `IN` of the users beside their count read `conversions` twice.)"""
    conditions, parameters = partner_conditions(f)
    clicked = "UUIDv7ToDateTime(toUUIDOrZero(click_id))"
    where = " AND ".join([
        f"{clicked} >= {{start:DateTime64(3, 'UTC')}}", f"{clicked} < {{end:DateTime64(3, 'UTC')}}",
        "event_type = 'registration'", "click_id != ''", "user_id != ''", *conditions,
    ])
    parameters = {**parameters, "start": f.start, "end": f.end}
    users = f"SELECT DISTINCT user_id FROM {DATABASE}.conversions FINAL WHERE {where}"
    per_user = (
        "SELECT u.user_id AS registered, "
        "sumIf(e.events, e.event_type = 'kyc_approved') AS kyc, "
        "sumIf(e.first_deposits, e.event_type = 'deposit') AS ftd, "
        "sumIf(e.events, e.event_type = 'trade') AS trades "
        f"FROM {DATABASE}.events_by_user AS e RIGHT JOIN ({users}) AS u "
        "ON e.user_id = u.user_id GROUP BY registered"
    )
    sql = (
        "SELECT count(), countIf(kyc > 0), countIf(ftd > 0), countIf(trades > 0) "
        f"FROM ({per_user}){QUERY_SETTINGS}"
    )
    return Query(sql, parameters)


def clicks_cohort(client: Client, f: ClickFilter) -> tuple[int, int, int, int]:
    row = client.query(**_bound(clicks_cohort_query(f))).result_rows[0]
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def _bound(query: Query) -> dict[str, Any]:
    return {"query": query.sql, "parameters": query.parameters}

