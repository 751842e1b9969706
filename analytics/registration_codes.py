"""`invite.registration_codes`: every registration as `conversions` holds it, with the link code
of its click (schema migrations 13 and 18).

A registration knows its click (`conversions.click_id`), not the click's link code. A breakdown
by link counted its registrations by looking their clicks up among up to 90 days of the links'
partners' clicks, at every question (68 ms of a 135 ms answer on the benchmark's data); then by
joining `conversions` with the stored codes (57 to 80 ms: a hash join of every registration).
A click's code never changes, so it is looked up once, and the breakdown reads this table alone:

- a view on `conversions` (`registration_codes_mv`) writes each registration row inserted there,
  with no code yet: the table has every registration, whoever inserted it;
- when the batcher has written a batch of registrations (`fill_batch`), their clicks' codes are
  looked up and written as the same rows with the code, a version above (`version`: the
  conversion row's `inserted_at` in ms, times two, plus one when the code is known). Read FINAL
  (one row per `event_id`), the latest row of each registration wins as in `conversions`, with
  its code when it was found.

A registration whose click was not in `clicks` when it was written (the clicks' batcher behind
the SSO hook's) keeps no code; analytics/links.py looks those up at the question, so the count is
exact either way. Erasing a user deletes its rows, like its clicks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

DATABASE: Final = "invite"
TABLE: Final = "registration_codes"
VIEW: Final = "registration_codes_mv"
log = logging.getLogger("invite.analytics")

# A click's time is its UUIDv7's millisecond give or take the edge's own clock read just before
# (uuid_utils may also move the millisecond on to keep ids in order): a second either side.
_SLACK: Final = "toIntervalSecond(1)"
_CLICKED: Final = "UUIDv7ToDateTime(click, 'UTC')"
# Past any time a click can have (a literal: the migration runs without parameters).
_LATEST: Final = "toDateTime64('2286-01-01 00:00:00', 3, 'UTC')"
# A registration's columns as `conversions` holds them, carried with its code; a row's version.
_CARRIED: Final = ("ts", "partner_id", "ancestors", "campaign", "version")
_VERSION: Final = "toUInt64(toUnixTimestamp64Milli(inserted_at)) * 2"
_COLUMNS: Final = "event_id, click_id, code, ts, partner_id, ancestors, campaign, version"


def registered(where: str, table: str = "conversions", carried: bool = False) -> str:
    """The registrations with a click id among `where` (conditions on `conversions`, or on this
    table), read FINAL: event id, partner, the click's id as written and as a UUID; `carried`:
    their other columns and version too (from `conversions`)."""
    kind = "event_type = 'registration' AND " if table == "conversions" else ""
    more = f", ts, ancestors, campaign, {_VERSION} AS version" if carried else ""
    return (
        "SELECT event_id, partner_id, click_id, toUUIDOrZero(click_id) AS click"  # noqa: S608
        f"{more} FROM {DATABASE}.{table} FINAL WHERE {kind}click_id != '' AND {where}"
    )


def codes_of(registrations: str, partners: str, codes: str = "",
             carried: Sequence[str] = ()) -> str:
    """(event_id, click_id, code, *carried) of the registrations (a statement giving
    `event_id`, `click_id`, `click` and the `carried` columns) whose click is in `clicks`,
    among the partners' clicks (`partners`: a set expression) between the earliest and the
    latest of those clicks (a click id of another kind gives 1970: then up to the last time a
    click can have). `codes`: a condition on the clicks' `code` too."""
    latest = f"if({_CLICKED} = toDateTime64(0, 3, 'UTC'), {_LATEST}, {_CLICKED})"
    within = f" AND k.code IN {codes}" if codes else ""
    more = "".join(f", r.{column} AS {column}" for column in carried)
    grouped = "".join(f", r.{column}" for column in carried)
    return (
        f"WITH (SELECT (min({_CLICKED}) - {_SLACK}, max({latest}) + {_SLACK}) "  # noqa: S608
        f"FROM ({registrations})) AS bounds "
        f"SELECT r.event_id AS event_id, r.click_id AS click_id, any(k.code) AS code{more} "
        f"FROM {DATABASE}.clicks AS k INNER JOIN ({registrations}) AS r ON k.click_id = r.click "
        f"WHERE k.partner_id IN {partners}{within} AND k.ts >= bounds.1 AND k.ts <= bounds.2 "
        f"GROUP BY r.event_id, r.click_id{grouped}"
    )


def fill_statement(where: str, table: str = TABLE) -> str:
    """Look up and store the codes of the registrations among `where` (conditions on
    `conversions`): their latest rows again, with the code, a version above."""
    found = registered(where, carried=True)
    partners = f"(SELECT partner_id FROM ({found}))"  # noqa: S608
    looked_up = codes_of(found, partners, carried=_CARRIED)
    return (f"INSERT INTO {DATABASE}.{table} ({_COLUMNS}) SELECT "  # noqa: S608
            f"{_COLUMNS.replace('version', 'version + 1')} FROM ({looked_up})")


# Migration 13 (the table's first form: the codes alone, keyed by registration and click).
_FOUND_13: Final = registered("1")
_PARTNERS_13: Final = f"(SELECT partner_id FROM ({_FOUND_13}))"  # noqa: S608
MIGRATION_13: Final = (
    f"CREATE TABLE IF NOT EXISTS {DATABASE}.{TABLE} (event_id String, click_id String, "
    "code String, filled_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    "ENGINE = ReplacingMergeTree(filled_at) ORDER BY (event_id, click_id)",
    f"INSERT INTO {DATABASE}.{TABLE} (event_id, click_id, code) "
    f"{codes_of(_FOUND_13, _PARTNERS_13)}",
)
# Each registration row written to `conversions` (the view's statement), without its code.
_UNFILLED: Final = (
    f"SELECT event_id, click_id, '' AS code, ts, partner_id, ancestors, campaign, "  # noqa: S608
    f"{_VERSION} AS version FROM {DATABASE}.conversions WHERE event_type = 'registration'"
)
_NEXT: Final = f"{TABLE}_next"
# Every registration row of `conversions` (each of its versions), then the same rows with the
# codes migration 13 and the batcher stored (kept after retention dropped their clicks), then
# the others' clicks looked up. Run it with the batchers stopped; rerunnable (after the swap the
# codes are read from the new table, which has the same `event_id`, `click_id` and `code`).
MIGRATION_18: Final = (
    f"DROP VIEW IF EXISTS {DATABASE}.{VIEW}",
    f"DROP TABLE IF EXISTS {DATABASE}.{_NEXT}",
    f"CREATE TABLE {DATABASE}.{_NEXT} (event_id String, click_id String, code String, "
    "ts DateTime64(3, 'UTC'), partner_id String, ancestors Array(String), campaign String, "
    "version UInt64, filled_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    "ENGINE = ReplacingMergeTree(version) ORDER BY event_id",
    f"INSERT INTO {DATABASE}.{_NEXT} ({_COLUMNS}) {_UNFILLED}",
    f"INSERT INTO {DATABASE}.{_NEXT} ({_COLUMNS}) "  # noqa: S608
    "SELECT r.event_id, r.click_id, c.found, r.ts, r.partner_id, r.ancestors, r.campaign, "
    f"{_VERSION.replace('inserted_at', 'r.inserted_at')} + 1 FROM {DATABASE}.conversions AS r "
    "INNER JOIN (SELECT event_id, click_id, any(code) AS found "
    f"FROM {DATABASE}.{TABLE} WHERE code != '' GROUP BY event_id, click_id) AS c "
    "ON r.event_id = c.event_id AND r.click_id = c.click_id "
    "WHERE r.event_type = 'registration' AND r.click_id != ''",
    fill_statement(f"(event_id, click_id) NOT IN (SELECT event_id, click_id FROM "  # noqa: S608
                   f"{DATABASE}.{_NEXT} WHERE code != '')", _NEXT),
    # One part, as background merges leave it: a breakdown reads it FINAL.
    f"OPTIMIZE TABLE {DATABASE}.{_NEXT} FINAL",
    f"EXCHANGE TABLES {DATABASE}.{TABLE} AND {DATABASE}.{_NEXT}",
    f"DROP TABLE {DATABASE}.{_NEXT}",
    f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}.{VIEW} TO {DATABASE}.{TABLE} "
    f"AS {_UNFILLED}",
)


def fill_batch(client: Client, event_ids: Sequence[str]) -> None:
    """Store the codes of the registrations among a batch just written. A failure leaves them to
    be looked up at the question (logged, never raised: the batch itself is written, and the
    view wrote the registrations without their codes)."""
    if not event_ids:
        return
    try:
        client.command(fill_statement("event_id IN {ids:Array(String)}"),
                       parameters={"ids": list(event_ids)})
    except ClickHouseError as exc:
        log.warning("registration codes of %d conversions not stored (%s): they are looked up "
                    "when a breakdown by link asks for them", len(event_ids),
                    type(exc).__name__)
