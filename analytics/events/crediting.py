"""Crediting: `events_credited` kept equal to what the events and the registrations say.

An event belongs to the partner its user's registration was credited to: the latest
registration or reattribution at or before the event's time (an event older than the user's
first registration goes to that first one, so events posted before the registration arrived are
credited once it does). Account events reach their user through `account_opened` or the
registration's account. A reversal cancels what it reverses; the first-time deposit (FTD) is the
user's earliest deposit not reversed.

Each pass looks at what arrived since the last one (by `inserted_at`) and works user by user: new
events of a user whose attribution did not change are credited as they are; a user with a new
registration, account, reversal or deposit is computed again from all of its events. What is
written is the difference between that and what `events_credited` holds (a cancelling row and a
new one), so a pass can run twice over the same rows and change nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import orjson
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from analytics.events.credit_rules import (
    NO_DIMS,
    RAW_COLUMNS,
    Attribution,
    RawEvent,
    Timeline,
    click_time_ms,
    desired_rows,
    raw_event,
)
from analytics.events.schema import CREDITED_COLUMNS, DATABASE
from edge.redis_client import as_text
from edge.streams import NOTIFICATION_STREAM

log = logging.getLogger("invite.crediting")

INTERVAL_S: Final = 1.0
# Rows inserted while a pass reads may carry an `inserted_at` a little before what it saw last.
OVERLAP_MS: Final = 5_000
STATE_KEY: Final = "invite:credit"
LOCK_KEY: Final = "invite:credit:lock"
LOCK_TTL_S: Final = 120.0
CHUNK: Final = 5_000
NAMES: Final = tuple(name for name, _ in CREDITED_COLUMNS)
ZERO: Final = Decimal(0)
# A user must be computed again from all its events when one of these arrives.
RECOMPUTES: Final = frozenset({"account_opened", "deposit", "reversal"})
REVERSED_MARK: Final = "reversed_kept"


class Crediting:
    def __init__(self, redis: Redis, clickhouse: Client, *, interval_s: float = INTERVAL_S,
                 notify: bool = True) -> None:
        self._redis = redis
        self._clickhouse = clickhouse
        self._interval = interval_s
        self._notify = notify
        self._stopping = asyncio.Event()
        self._failing = False
        self.passes = 0
        self.rows_written = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """A pass every interval until stop(); failures are logged once and retried."""
        while not self._stopping.is_set():
            try:
                await self.pass_once()
                if self._failing:
                    log.info("crediting works again")
                    self._failing = False
            except (RedisError, OSError, ClickHouseError) as exc:
                if not self._failing:
                    log.warning("crediting failed (%s: %s); retrying", type(exc).__name__,
                                str(exc)[:200])
                    self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def pass_once(self) -> int:
        """Credit what arrived since the last pass; returns the rows written."""
        lock = self._redis.lock(LOCK_KEY, timeout=LOCK_TTL_S, blocking_timeout=0)
        if not await lock.acquire():
            return 0  # another batcher process is crediting
        try:
            state = {as_text(k): int(v) for k, v in (await self._redis.hgetall(STATE_KEY)).items()}
            written, notices, marks = await asyncio.to_thread(self._credit, state)
            for notice in notices:
                await self._redis.xadd(NOTIFICATION_STREAM, {"e": orjson.dumps(notice)})
            if marks:
                await self._redis.hset(STATE_KEY, mapping=dict[Any, Any](marks))
        finally:
            with contextlib.suppress(RedisError):
                await lock.release()
        self.passes += 1
        self.rows_written += written
        return written

    # In a worker thread: ClickHouse only.

    def _credit(self, state: dict[str, int]) -> tuple[int, list[dict[str, Any]], dict[str, int]]:
        events_since = max(state.get("events", 0) - OVERLAP_MS, 0)
        conversions_since = max(state.get("conversions", 0) - OVERLAP_MS, 0)
        new_events, events_mark = self._new_events(events_since)
        changed_users, conversions_mark = self._new_conversion_users(conversions_since)
        marks = {}
        if events_mark:
            marks["events"] = events_mark
        if conversions_mark:
            marks["conversions"] = conversions_mark
        if not state.get(REVERSED_MARK):
            # Crediting before schema migration 8 left reversed events out; credit their users
            # again once, so the ledger finds the partner of every reversed deposit and trade.
            changed_users |= self._users_with_reversals()
            marks[REVERSED_MARK] = 1
        if not new_events and not changed_users:
            return 0, [], marks
        accounts = {e.account for e in new_events if e.account}
        users = {e.user_id for e in new_events if e.user_id} | changed_users
        account_users = self._account_users(accounts, users)
        full: set[str] = set(changed_users)
        incremental: dict[str, list[RawEvent]] = defaultdict(list)
        for event in new_events:
            key = event.user_id or account_users.get(event.account) or f"a:{event.account}"
            if event.event_type in RECOMPUTES or not event.user_id:
                full.add(key)
            incremental[key].append(event)
        written, notices = 0, []
        full_list = sorted(full)
        for start in range(0, len(full_list), CHUNK):
            chunk = full_list[start : start + CHUNK]
            chunk_written, chunk_notices = self._recredit(
                chunk, {k: [] for k in chunk}, account_users, full=True
            )
            written += chunk_written
            notices += chunk_notices
        rest = sorted(set(incremental) - full)
        for start in range(0, len(rest), CHUNK):
            chunk = rest[start : start + CHUNK]
            chunk_written, _ = self._recredit(
                chunk, {k: incremental[k] for k in chunk}, account_users, full=False
            )
            written += chunk_written
        return written, notices, marks

    def _recredit(
        self, keys: Sequence[str], given: dict[str, list[RawEvent]],
        account_users: dict[str, str], *, full: bool,
    ) -> tuple[int, list[dict[str, Any]]]:
        users = [key for key in keys if not key.startswith("a:")]
        if full:
            user_accounts = defaultdict(set)
            for account, user in account_users.items():
                user_accounts[user].add(account)
            loose = [key[2:] for key in keys if key.startswith("a:")]
            events = self._user_events(users, {a for u in users for a in user_accounts[u]},
                                       loose)
            by_key: dict[str, list[RawEvent]] = defaultdict(list)
            for event in events:
                by_key[event.user_id or account_users.get(event.account)
                       or f"a:{event.account}"].append(event)
        else:
            by_key = given
        timelines = self._timelines(users)
        desired: dict[str, tuple[Any, ...]] = {}
        for key in keys:
            user_id = "" if key.startswith("a:") else key
            desired.update(desired_rows(by_key.get(key, []), user_id,
                                        timelines.get(key, Timeline()), full))
        scope = {event.event_id for key in keys for event in by_key.get(key, [])}
        current = self._current(scope)
        cancels = [row for event_id, row in current.items() if desired.get(event_id) != row]
        additions = [row for event_id, row in desired.items() if current.get(event_id) != row]
        if cancels or additions:
            self._clickhouse.insert(
                f"{DATABASE}.events_credited",
                [(*row[:-1], -1) for row in cancels] + [list(row) for row in additions],
                column_names=list(NAMES),
                column_type_names=[type_name for _, type_name in CREDITED_COLUMNS],
            )
        notices = []
        if full and self._notify:
            had = {row[3] for row in current.values() if row[NAMES.index("is_first_deposit")]}
            for row in additions:
                first = row[NAMES.index("is_first_deposit")]
                if first and row[3] and row[3] not in had and row[5]:
                    notices.append({
                        "type": "referral.ftd", "userId": row[3], "partnerId": row[5],
                        "eventId": row[0], "amount": format(row[15].normalize(), "f"),
                        "ts": row[2],
                    })
        return len(cancels) + len(additions), notices

    # The reads.

    def _new_events(self, since_ms: int) -> tuple[list[RawEvent], int]:
        result = self._clickhouse.query(
            f"SELECT {RAW_COLUMNS}, toUnixTimestamp64Milli(inserted_at) FROM {DATABASE}.events "
            "WHERE inserted_at > fromUnixTimestamp64Milli({since:Int64}, 'UTC')",
            parameters={"since": since_ms},
        )
        rows = result.result_rows
        mark = max((int(row[-1]) for row in rows), default=0)
        return [raw_event(row) for row in rows], mark

    def _new_conversion_users(self, since_ms: int) -> tuple[set[str], int]:
        rows = self._clickhouse.query(
            f"SELECT user_id, toUnixTimestamp64Milli(inserted_at) FROM {DATABASE}.conversions "
            "WHERE inserted_at > fromUnixTimestamp64Milli({since:Int64}, 'UTC') AND user_id != ''",
            parameters={"since": since_ms},
        ).result_rows
        return {str(row[0]) for row in rows}, max((int(row[1]) for row in rows), default=0)

    def _users_with_reversals(self) -> set[str]:
        rows = self._clickhouse.query(
            f"SELECT DISTINCT user_id FROM {DATABASE}.events WHERE user_id != '' AND event_id IN "
            f"(SELECT reverses FROM {DATABASE}.events WHERE event_type = 'reversal')"
        ).result_rows
        return {str(row[0]) for row in rows}

    def _account_users(self, accounts: set[str], users: set[str]) -> dict[str, str]:
        """account → user, from account_opened events and the registrations' accounts."""
        if not accounts and not users:
            return {}
        parameters = {"accounts": sorted(accounts), "users": sorted(users)}
        rows = self._clickhouse.query(
            f"SELECT ctid_trader_account_id, user_id FROM {DATABASE}.events "
            "WHERE event_type = 'account_opened' AND (ctid_trader_account_id IN "
            "{accounts:Array(String)} OR user_id IN {users:Array(String)}) "
            f"UNION ALL SELECT ctid_trader_account_id, user_id FROM {DATABASE}.conversions "
            "WHERE ctid_trader_account_id != '' AND user_id != '' AND (ctid_trader_account_id IN "
            "{accounts:Array(String)} OR user_id IN {users:Array(String)})",
            parameters=parameters,
        ).result_rows
        return {str(account): str(user) for account, user in rows}

    def _user_events(
        self, users: Sequence[str], accounts: set[str], loose_accounts: Sequence[str]
    ) -> list[RawEvent]:
        rows = self._clickhouse.query(
            f"SELECT {RAW_COLUMNS} FROM {DATABASE}.events FINAL "
            "WHERE user_id IN {users:Array(String)} OR (user_id = '' AND "
            "ctid_trader_account_id IN {accounts:Array(String)})",
            parameters={"users": list(users),
                        "accounts": sorted(accounts | set(loose_accounts))},
        ).result_rows
        return [raw_event(row) for row in rows]

    def _timelines(self, users: Sequence[str]) -> dict[str, Timeline]:
        if not users:
            return {}
        rows = self._clickhouse.query(
            "SELECT user_id, toUnixTimestamp64Milli(ts), partner_id, ancestors, campaign, "
            f"click_id FROM {DATABASE}.conversions FINAL "
            "WHERE user_id IN {users:Array(String)} AND partner_id != '' "
            "AND event_type IN ('registration', 'reattribution') ORDER BY ts, event_id",
            parameters={"users": list(users)},
        ).result_rows
        dims = self._click_dims({(str(row[2]), str(row[5])) for row in rows if row[5]})
        timelines: dict[str, Timeline] = defaultdict(Timeline)
        for user, ts, partner, ancestors, campaign, click in rows:
            timelines[str(user)].attributions.append(Attribution(
                int(ts), str(partner), tuple(map(str, ancestors)), str(campaign), str(click),
                dims.get(str(click), NO_DIMS),
            ))
        return timelines

    def _click_dims(self, clicks: set[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
        """sub_id, country, device, os, browser, referer_host and code of registration clicks, read
        by their partner and the millisecond their UUIDv7 holds (one primary-key range each)."""
        found: dict[str, tuple[str, ...]] = {}
        pairs = sorted(clicks)
        for start in range(0, len(pairs), CHUNK):
            chunk = pairs[start : start + CHUNK]
            times = [click_time_ms(click) for _, click in chunk]
            known = [t for t in times if t is not None]
            if not known:
                continue
            rows = self._clickhouse.query(
                "SELECT toString(click_id), sub_id, country, device, os, browser, referer_host, "
                "code "
                f"FROM {DATABASE}.clicks WHERE (partner_id, toString(click_id)) IN "
                "{pairs:Array(Tuple(String, String))} AND ts BETWEEN "
                "fromUnixTimestamp64Milli({low:Int64}, 'UTC') AND "
                "fromUnixTimestamp64Milli({high:Int64}, 'UTC')",
                parameters={"pairs": chunk, "low": min(known) - 60_000,
                            "high": max(known) + 60_000},
            ).result_rows
            for click, *values in rows:
                found[str(click)] = tuple(str(v) for v in values)
        return found

    def _current(self, event_ids: set[str]) -> dict[str, tuple[Any, ...]]:
        """The credited rows of these events as they stand (sum of signs positive)."""
        current: dict[str, tuple[Any, ...]] = {}
        ids = sorted(event_ids)
        columns = ", ".join(name for name in NAMES if name != "sign")
        for start in range(0, len(ids), CHUNK):
            rows = self._clickhouse.query(
                f"SELECT {columns.replace('ts,', 'toUnixTimestamp64Milli(ts),', 1)}, "
                f"sum(sign) AS live FROM {DATABASE}.events_credited "
                "WHERE event_id IN {ids:Array(String)} "
                f"GROUP BY {columns} HAVING live > 0",
                parameters={"ids": ids[start : start + CHUNK]},
            ).result_rows
            for row in rows:
                values = list(row[:-1])
                values[6] = tuple(values[6])
                current[str(values[0])] = (*values, 1)
        return current
