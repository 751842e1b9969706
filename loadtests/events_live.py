"""A broker's live traffic while the funnel questions are timed (`loadtests.events_queries
--live`): every second, clicks and credited funnel events of now, as the batcher and crediting
insert them (their views follow); now and then a late event in a day that has ended (a
back-fill, a reversal of an old deposit), which changes a stored day (analytics.series_cache,
analytics.closed_clicks). The rows are copies of the data's latest ones with new ids.

It adds to the data directory it runs on: run it on a copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from analytics.clickhouse import Client

# The benchmark's data averages 1.3 clicks and 0.6 events a second (10M and 5M in 90 days):
# a busy hour's traffic is several times that.
CLICKS_PER_SECOND = 10
EVENTS_PER_SECOND = 5
LATE_EVERY_S = 10
_CLICKS = (
    "INSERT INTO invite.clicks SELECT * REPLACE (generateUUIDv7() AS click_id, now64(3) AS ts, "
    "now64(3) AS inserted_at) FROM invite.clicks WHERE ts >= now64(3) - INTERVAL 1 DAY "
    "LIMIT {n}"
)
_EVENTS = (
    "INSERT INTO invite.events_credited SELECT * REPLACE (concat('live-', "
    "toString(generateUUIDv4())) AS event_id, {ts} AS ts) FROM invite.events_credited "
    "WHERE ts >= now64(3) - INTERVAL 2 DAY AND sign = 1 AND partner_id != '' LIMIT {n}"
)
# A day that has ended within the dashboard's 30 days.
_LATE_TS = "now64(3) - toIntervalSecond(86400 + rand() % (20 * 86400))"


@dataclass
class LiveTraffic:
    """Inserts on its own connection (`connect`) in a thread while in its `with` block."""

    connect: Callable[[], Client]
    clicks: int = 0
    events: int = 0
    late_events: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LiveTraffic:
        self._thread = threading.Thread(target=self._run, name="live-traffic", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        client = self.connect()
        second = 0
        try:
            while not self._stop.wait(1.0):
                second += 1
                try:
                    client.command(_CLICKS.format(n=CLICKS_PER_SECOND))
                    self.clicks += CLICKS_PER_SECOND
                    client.command(_EVENTS.format(n=EVENTS_PER_SECOND, ts="now64(3)"))
                    self.events += EVENTS_PER_SECOND
                    if second % LATE_EVERY_S == 0:
                        client.command(_EVENTS.format(n=1, ts=_LATE_TS))
                        self.late_events += 1
                except Exception as exc:  # reported with the figures, the timing goes on
                    self.errors.append(str(exc)[:300])
        finally:
            client.close()

    def facts(self) -> dict[str, object]:
        return {"live_clicks": self.clicks, "live_events": self.events,
                "live_late_events": self.late_events, "live_errors": self.errors[:5]}
