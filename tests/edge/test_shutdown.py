"""Stopping within a deadline: tasks that will not stop, and a shutdown that hangs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.shutdown import awaited_by, cancel_within, wait_within


async def _swallows_one_cancellation(stopped: asyncio.Event) -> None:
    # What a client library does when a cancellation meets its own timeout: it comes out as a
    # TimeoutError, which a retry loop catches.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)
    stopped.set()


async def _never_stops(until: asyncio.Event) -> None:
    while not until.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await _waits_for(until)


async def _waits_for(event: asyncio.Event) -> None:
    await event.wait()


def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    async def scenario() -> None:
        stopped = asyncio.Event()
        task = asyncio.create_task(_swallows_one_cancellation(stopped))
        await asyncio.sleep(0)
        assert await cancel_within([task], deadline_s=2.0) == set()
        assert task.cancelled()
        assert not stopped.is_set()

    asyncio.run(scenario())


def test_a_task_that_never_stops_is_left_behind_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> set[asyncio.Task[None]]:
        until = asyncio.Event()
        task = asyncio.create_task(_never_stops(until), name="stubborn")
        await asyncio.sleep(0)
        started = asyncio.get_running_loop().time()
        left = await cancel_within([task], deadline_s=1.5)
        assert asyncio.get_running_loop().time() - started < 10  # bounded, not hanging
        assert [step.split()[0] for step in awaited_by(task)] == [
            "_never_stops", "_waits_for", "wait"]
        assert awaited_by(task)[0].startswith(f"_never_stops {Path(__file__).name}:")
        until.set()
        await task
        return left

    with caplog.at_level(logging.WARNING, logger="invite.shutdown"):
        left = asyncio.run(scenario())
    assert [task.get_name() for task in left] == ["stubborn"]
    message = caplog.records[-1].getMessage()
    assert "task stubborn did not stop within 1.5 s" in message
    assert "_never_stops" in message and "_waits_for" in message


def test_wait_within_tells_whether_the_task_ended_by_itself() -> None:
    async def scenario() -> tuple[bool, bool]:
        quick = asyncio.create_task(asyncio.sleep(0.01))
        slow = asyncio.create_task(asyncio.sleep(3600))
        results = await wait_within(quick, 5.0), await wait_within(slow, 0.05)
        slow.cancel()
        return results

    assert asyncio.run(scenario()) == (True, False)


HUNG_SHUTDOWN = """
import asyncio, logging, signal, sys
from pathlib import Path
from edge.shutdown import Watchdog

logging.basicConfig(level=logging.INFO)
watchdog = Watchdog(0.5)
watchdog.at_forced_exit(lambda: Path(sys.argv[1]).write_text("cleaned up"))

async def drain_forever():
    await asyncio.Event().wait()

async def main():
    task = asyncio.create_task(drain_forever(), name="drain")
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, watchdog.arm)
    print("ready", flush=True)
    await task

asyncio.run(main())
"""


def test_a_hung_shutdown_is_ended_by_the_watchdog_which_says_what_ran(tmp_path: Path) -> None:
    marker = tmp_path / "cleanup"
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HUNG_SHUTDOWN), str(marker)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n"
    process.terminate()
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 1, output
    assert "shutdown did not finish within 0.5 s: exiting now" in output
    assert "still running: task drain awaiting drain_forever" in output
    assert "Thread 0x" in output or "Current thread 0x" in output  # every thread's stack
    assert marker.read_text() == "cleaned up"
