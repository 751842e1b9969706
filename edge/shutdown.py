"""Stopping within a deadline: background tasks cancelled and awaited for a bounded time, and a
watchdog that ends a process whose shutdown hangs, saying what was still running."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

log = logging.getLogger("invite.shutdown")

# A cancelled task gets this long to finish; one that swallowed the cancellation (a library that
# turned it into a timeout and retried) is cancelled once more, then left behind and named.
CANCEL_GRACE_S = 5.0
_RECANCEL_S = 1.0


async def cancel_within(tasks: Iterable[asyncio.Task[Any]], deadline_s: float = CANCEL_GRACE_S,
                        ) -> set[asyncio.Task[Any]]:
    """Cancel `tasks` and wait for them at most `deadline_s`; returns those still running (logged
    with what they await). Their exceptions are not raised: the caller is stopping."""
    pending = {task for task in tasks if not task.done()}
    for attempt_s in (max(deadline_s - _RECANCEL_S, 0.0), _RECANCEL_S):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=attempt_s)
    for task in pending:
        log.warning("task %s did not stop within %g s; left behind, awaiting %s",
                    task.get_name(), deadline_s, _awaiting(task))
    return pending


async def wait_within(task: asyncio.Task[Any], deadline_s: float) -> bool:
    """Wait for `task` to end on its own for `deadline_s`; False if it did not (still running)."""
    if not task.done():
        await asyncio.wait({task}, timeout=deadline_s)
    return task.done()


def awaited_by(task: asyncio.Task[Any]) -> list[str]:
    """Where a task is suspended: its coroutine chain, outermost first, as `function file:line`."""
    chain: list[str] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None and len(chain) < 64:
        frame: FrameType | None = (getattr(awaitable, "cr_frame", None)
                                   or getattr(awaitable, "gi_frame", None)
                                   or getattr(awaitable, "ag_frame", None))
        if frame is None:
            break
        code = frame.f_code
        chain.append(f"{code.co_name} {os.path.basename(code.co_filename)}:{frame.f_lineno}")
        awaitable = (getattr(awaitable, "cr_await", None)
                     or getattr(awaitable, "gi_yieldfrom", None)
                     or getattr(awaitable, "ag_await", None))
    return chain


def _awaiting(task: asyncio.Task[Any]) -> str:
    return " <- ".join(awaited_by(task)) or "nothing"


class Watchdog:
    """Armed when shutdown starts: if the process is still there `deadline_s` later, it logs the
    tasks and threads still running, runs the cleanups (the private Redis is stopped), and exits
    with status 1. A hung shutdown then ends by itself and says where it hung."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self._cleanups: list[Callable[[], None]] = []
        self._timer: threading.Timer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def at_forced_exit(self, cleanup: Callable[[], None]) -> None:
        self._cleanups.append(cleanup)

    def arm(self) -> None:
        """Start counting (once; from the thread running the event loop, e.g. a signal handler)."""
        if self._timer is not None:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._timer = threading.Timer(self.deadline_s, self._expire)
        self._timer.name = "shutdown-watchdog"
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        log.error("shutdown did not finish within %g s: exiting now (answered clicks are in "
                  "Redis or the spool; unacknowledged stream entries are read at the next start)",
                  self.deadline_s)
        for task in _tasks_of(self._loop):
            log.error("still running: task %s awaiting %s", task.get_name(), _awaiting(task))
        for handler in logging.getLogger().handlers:
            handler.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        for cleanup in self._cleanups:
            try:
                cleanup()
            except Exception:
                log.exception("cleanup at the forced exit failed")
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def _tasks_of(loop: asyncio.AbstractEventLoop | None) -> list[asyncio.Task[Any]]:
    if loop is None or loop.is_closed():
        return []
    for _ in range(3):  # read from another thread: the set may change while copied
        try:
            return [task for task in asyncio.all_tasks(loop) if not task.done()]
        except RuntimeError:
            continue
    return []
