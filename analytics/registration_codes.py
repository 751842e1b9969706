"""`invite.registration_codes` (schema migration 13): the link code of each registration's click.

A registration knows its click (`conversions.click_id`), not the click's link code. A breakdown
by link counted its registrations by looking their clicks up among up to 90 days of the links'
partners' clicks, at every question (68 ms of a 135 ms answer on the benchmark's data). A click's
code never changes, so it is looked up once instead: when the batcher has written a batch of
registrations (`fill_batch`), and by the migration for the registrations recorded before it.

A registration whose click is not in `clicks` yet (the clicks' batcher behind the SSO hook's) or
no longer (retention) has no row here; analytics/links.py looks those up at the question, as
before, so the count is exact either way. Erasing a user deletes its rows (by the click ids of
its registrations), like its clicks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

DATABASE: Final = "invite"
TABLE: Final = "registration_codes"
log = logging.getLogger("invite.analytics")

# Keyed by the registration and its click: a registration recorded again with another click (its
# latest row wins in `conversions`) matches no row of the former click's.
DDL: Final = (
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.{TABLE} (event_id String, click_id String, "
    "code String, filled_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    "ENGINE = ReplacingMergeTree(filled_at) ORDER BY (event_id, click_id)"
)
# A click's time is its UUIDv7's millisecond give or take the edge's own clock read just before
# (uuid_utils may also move the millisecond on to keep ids in order): a second either side.
_SLACK: Final = "toIntervalSecond(1)"
_CLICKED: Final = "UUIDv7ToDateTime(click, 'UTC')"
# Past any time a click can have (a literal: the migration runs without parameters).
_LATEST: Final = "toDateTime64('2286-01-01 00:00:00', 3, 'UTC')"


def registered(where: str) -> str:
    """The registrations with a click id among `where` (conditions on `conversions`): event id,
    partner, the click's id as written and as a UUID."""
    return (
        "SELECT event_id, partner_id, click_id, toUUIDOrZero(click_id) AS click "  # noqa: S608
        f"FROM {DATABASE}.conversions FINAL WHERE event_type = 'registration' "
        f"AND click_id != '' AND {where}"
    )


def codes_of(registrations: str, partners: str, codes: str = "") -> str:
    """(event_id, click_id, code) of the registrations (a statement giving `event_id`,
    `click_id`, `click`) whose click
    is in `clicks`, among the partners' clicks (`partners`: a set expression) between the
    earliest and the latest of those clicks (a click id of another kind gives 1970: then up to
    the last time a click can have). `codes`: a condition on the clicks' `code` too."""
    latest = f"if({_CLICKED} = toDateTime64(0, 3, 'UTC'), {_LATEST}, {_CLICKED})"
    within = f" AND k.code IN {codes}" if codes else ""
    return (
        f"WITH (SELECT (min({_CLICKED}) - {_SLACK}, max({latest}) + {_SLACK}) "  # noqa: S608
        f"FROM ({registrations})) AS bounds "
        "SELECT r.event_id AS event_id, r.click_id AS click_id, any(k.code) AS code "
        f"FROM {DATABASE}.clicks AS k INNER JOIN ({registrations}) AS r ON k.click_id = r.click "
        f"WHERE k.partner_id IN {partners}{within} AND k.ts >= bounds.1 AND k.ts <= bounds.2 "
        "GROUP BY r.event_id, r.click_id"
    )


def fill_statement(where: str) -> str:
    """Look up and store the codes of the registrations among `where`."""
    found = registered(where)
    partners = f"(SELECT partner_id FROM ({found}))"  # noqa: S608
    return (f"INSERT INTO {DATABASE}.{TABLE} (event_id, click_id, code) "
            f"{codes_of(found, partners)}")


# Every registration recorded so far (the migration; run it again any time: rows are replaced).
MIGRATION_13: Final = (DDL, fill_statement("1"))


def fill_batch(client: Client, event_ids: Sequence[str]) -> None:
    """Store the codes of the registrations among a batch just written. A failure leaves them to
    be looked up at the question (logged, never raised: the batch itself is written)."""
    if not event_ids:
        return
    try:
        client.command(fill_statement("event_id IN {ids:Array(String)}"),
                       parameters={"ids": list(event_ids)})
    except ClickHouseError as exc:
        log.warning("registration codes of %d conversions not stored (%s): they are looked up "
                    "when a breakdown by link asks for them", len(event_ids),
                    type(exc).__name__)
