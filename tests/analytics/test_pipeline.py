"""The batcher process's log: a summary line when something changed, not every interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import SimpleNamespace

from analytics.batcher_metrics import BatcherStats
from analytics.pipeline import _report_progress


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_progress_is_logged_only_when_something_changed() -> None:
    clicks = SimpleNamespace(stats=BatcherStats(), sink=SimpleNamespace(name="clicks"))
    conversions = SimpleNamespace(stats=BatcherStats(), sink=SimpleNamespace(name="conversions"))
    handler = Lines()
    logger = logging.getLogger("invite.batcher")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)

    async def scenario() -> None:
        task = asyncio.create_task(_report_progress((clicks, conversions), 0.02))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)  # idle: nothing to say
        clicks.stats.inserted = 120
        await asyncio.sleep(0.2)  # one change: one line
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(scenario())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert handler.lines == [
        "clicks inserted 120, duplicates skipped 0, dead letters 0, lag 0; "
        "conversions inserted 0, duplicates skipped 0, dead letters 0, lag 0"
    ]
