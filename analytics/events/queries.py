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
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analytics.events import rollups
from analytics.filters import ClickFilter
from analytics.queries import QUERY_SETTINGS, Query
from analytics.rollups import partner_conditions, raw_where

DATABASE: Final = "invite"
ZERO: Final = Decimal(0)
CENT: Final = Decimal("0.01")
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
    commissions: Decimal = field(default=ZERO)  # the ledger's (schema to come); 0 meanwhile

    def to_json(self) -> dict[str, Any]:
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
            "commissions": money(self.commissions),
        }


# Per (key, bucket): the sums over every row, the distinct counts over users with a live event.
_FIGURES: Final = (
    "SELECT key, toUnixTimestamp(t) AS bucket, "
    "sumIf(n, event_type = 'account_opened'), "
    "uniqExactIf(user_key, event_type = 'kyc_approved' AND n > 0), "
    "sumIf(n_ftd, event_type = 'deposit'), sumIf(n_ftd_amount, event_type = 'deposit'), "
    "uniqExactIf(user_key, event_type = 'deposit' AND n > 0), "
    "sumIf(n_amount, event_type = 'deposit'), sumIf(n_amount, event_type = 'withdrawal'), "
    "uniqExactIf(user_key, event_type = 'trade' AND n > 0), "
    "sumIf(n_lots, event_type = 'trade'), sumIf(n_revenue, event_type = 'trade') "
    "FROM ({rows}) GROUP BY key, bucket"
)


def figures_query(
    f: ClickFilter, key: str = "''", interval: str | None = None,
    keys: Sequence[str] | None = None, *, views: bool = True,
    dirty: Mapping[str, rollups.Ranges] | None = None,
) -> Query:
    """The figures of the filter's credited events, per value of `key` (a column) and bucket
    (`views`, `dirty`: see analytics.events.rollups.per_user_rows)."""
    where: tuple[str, ...] = ()
    parameters: dict[str, Any] = {}
    if keys is not None:
        where, parameters = (f"{key} IN {{keys:Array(String)}}",), {"keys": list(keys)}
    rows, parameters = rollups.per_user_rows(f, key, interval, where, parameters,
                                             views=views, dirty=dirty)
    return Query(_FIGURES.format(rows=rows) + QUERY_SETTINGS, parameters)


def _figures(row: Sequence[Any]) -> Figures:
    (accounts, kyc, ftds, ftd_amount, depositors, deposits, withdrawals, traders, lots,
     revenue) = row
    return Figures(
        accounts=int(accounts), kyc_approved=int(kyc), first_deposits=int(ftds),
        first_deposit_amount=Decimal(ftd_amount), depositors=int(depositors),
        deposit_amount=Decimal(deposits), withdrawal_amount=Decimal(withdrawals),
        active_traders=int(traders), lots=Decimal(lots), broker_revenue=Decimal(revenue),
    )


def read_figures(
    client: Client, f: ClickFilter, key: str = "''", interval: str | None = None,
    keys: Sequence[str] | None = None,
) -> Sequence[Sequence[Any]]:
    """figures_query's rows (analytics.events.rollups.read)."""
    def build(dirty: Mapping[str, rollups.Ranges] | None) -> tuple[str, dict[str, Any]]:
        query = figures_query(f, key, interval, keys, dirty=dirty)
        return query.sql, query.parameters

    if rollups.reads_raw(f, key):  # no view to look at
        sql, parameters = build(None)
        return client.query(sql, parameters=parameters).result_rows
    return rollups.read(client, build)


def figures_by_click_code(
    client: Client, f: ClickFilter, code_of: Mapping[str, str]
) -> dict[str, Figures]:
    """The figures of the users each code's clicks brought (`code_of`: click id → code)."""
    def build(dirty: Mapping[str, rollups.Ranges] | None) -> tuple[str, dict[str, Any]]:
        rows, parameters = rollups.per_user_rows(f, "click_id", dirty=dirty)
        # The map is bound once: a parameter written into every part costs its parsing each time.
        by_code = (
            "SELECT p.code AS key, r.t AS t, r.event_type AS event_type, r.user_key AS user_key, "
            "r.n AS n, r.n_ftd AS n_ftd, r.n_amount AS n_amount, r.n_ftd_amount AS n_ftd_amount, "
            f"r.n_lots AS n_lots, r.n_revenue AS n_revenue FROM ({rows}) AS r INNER JOIN ("
            "SELECT pair.1 AS click_id, pair.2 AS code FROM (SELECT arrayJoin(arrayZip("
            "{link_click_ids:Array(String)}, {link_codes:Array(String)})) AS pair)) AS p "
            "ON r.key = p.click_id"
        )
        return (_FIGURES.format(rows=by_code) + QUERY_SETTINGS,
                {**parameters, "link_click_ids": list(code_of),
                 "link_codes": list(code_of.values())})

    return {str(row[0]): _figures(row[2:]) for row in rollups.read(client, build)}


def figures(client: Client, f: ClickFilter) -> Figures:
    rows = read_figures(client, f)
    return _figures(rows[0][2:]) if rows else Figures()


def figures_by_bucket(client: Client, f: ClickFilter, interval: str) -> dict[int, Figures]:
    return {int(row[1]): _figures(row[2:]) for row in read_figures(client, f, interval=interval)}


def figures_by_key(
    client: Client, f: ClickFilter, column: str, keys: Sequence[str]
) -> dict[str, Figures]:
    if not keys:
        return {}
    return {str(row[0]): _figures(row[2:]) for row in read_figures(client, f, column, keys=keys)}


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

    def to_json(self) -> dict[str, Any]:
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
    those users how many were ever approved, deposited and traded (up to now)."""
    conditions, parameters = partner_conditions(f)
    clicked = "UUIDv7ToDateTime(toUUIDOrZero(click_id))"
    where = " AND ".join([
        f"{clicked} >= {{start:DateTime64(3, 'UTC')}}", f"{clicked} < {{end:DateTime64(3, 'UTC')}}",
        "event_type = 'registration'", "click_id != ''", "user_id != ''", *conditions,
    ])
    parameters = {**parameters, "start": f.start, "end": f.end}
    users = f"SELECT user_id FROM {DATABASE}.conversions FINAL WHERE {where}"
    per_user = (
        "SELECT user_id, event_type, sum(events) AS n, sum(first_deposits) AS n_ftd "
        f"FROM {DATABASE}.events_by_user WHERE user_id IN ({users}) GROUP BY user_id, event_type"
    )
    sql = (
        f"SELECT (SELECT uniqExact(user_id) FROM ({users})), "
        "uniqExactIf(user_id, event_type = 'kyc_approved' AND n > 0), "
        "uniqExactIf(user_id, event_type = 'deposit' AND n_ftd > 0), "
        f"uniqExactIf(user_id, event_type = 'trade' AND n > 0) FROM ({per_user})"
        f"{QUERY_SETTINGS}"
    )
    return Query(sql, parameters)


def clicks_cohort(client: Client, f: ClickFilter) -> tuple[int, int, int, int]:
    row = client.query(**_bound(clicks_cohort_query(f))).result_rows[0]
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def _bound(query: Query) -> dict[str, Any]:
    return {"query": query.sql, "parameters": query.parameters}

