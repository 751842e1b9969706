"""A question's independent parts, each on a connection of its own beside the shared client's.

The dashboard's questions read the clicks and the funnel events in separate statements that do
not depend on each other. On one connection they run one after the other; on two, the engine
runs them side by side (embedded, chDB serves several connections to its one engine at once; a
server, several sessions), so an answer takes about as long as its slowest part instead of the
sum (docs/benchmarks.md, "Funnel events").

`SideParts` keeps a few connections open (opening one costs about 10 ms), lends one to each part
and takes it back; a connection that failed is closed, not lent again. The parts run in its own
threads, so a question waiting for its parts never takes a connection another part needs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

T = TypeVar("T")


class SideParts:
    """Runs parts on up to `size` connections from `factory`, opened when first needed."""

    def __init__(self, factory: Callable[[], Client], size: int) -> None:
        self._factory = factory
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="side-part")
        self._idle: list[Client] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, part: Callable[[Client], T]) -> Future[T]:
        """Start `part` on a connection of its own; its future gives the answer or the error."""
        return self._executor.submit(self._run, part)

    def _run(self, part: Callable[[Client], T]) -> T:
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = self._factory()
        healthy = False
        try:
            answer = part(client)
            healthy = True
            return answer
        except OperationalError:
            raise  # the connection is suspect: closed below
        except Exception:
            healthy = True  # a bad question, not a bad connection
            raise
        finally:
            with self._lock:
                keep = healthy and not self._closed
                if keep:
                    self._idle.append(client)
            if not keep:
                client.close()

    def close(self) -> None:
        """Wait for the parts under way, then close every connection."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()
