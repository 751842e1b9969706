"""Exponential backoff with full jitter, and a gate that holds work back while a backend is down."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from edge.errors import InviteError, UpstreamError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one call is tried before its error is given to the caller."""

    attempts: int = 4
    base_s: float = 0.2
    max_s: float = 30.0
    timeout_s: float = 5.0

    def delay(self, failures: int, floor_s: float = 0.0) -> float:
        """The wait after `failures` failed tries: uniform in [0, base·2^(failures-1)], capped.

        Full jitter spreads the retries of many workers that failed at the same moment, so a
        backend that comes back is not hit by all of them at once. `floor_s` honours a
        `Retry-After` the backend sent.
        """
        ceiling = min(self.max_s, self.base_s * 2 ** max(failures - 1, 0))
        return min(self.max_s, max(floor_s, random.uniform(0, ceiling)))

    @property
    def worst_case_s(self) -> float:
        """The longest one call may take with all its tries: a bound for leases."""
        waits = sum(min(self.max_s, self.base_s * 2.0**n) for n in range(self.attempts))
        return float(self.attempts * self.timeout_s + waits)


class Gate:
    """Per backend: open while it answers; after a failure only one probe at a time, backed off.

    While the gate is shut, queued work stays queued instead of timing out against a backend
    that is down; the first success opens it for everything again.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._failures = 0
        self._retry_at = 0.0
        self._probing = False

    @property
    def open(self) -> bool:
        return self._failures == 0

    @property
    def failures(self) -> int:
        return self._failures

    def try_enter(self) -> bool:
        """Whether one piece of work may go to the backend now (the probe, when shut)."""
        if self._failures == 0:
            return True
        if self._probing or time.monotonic() < self._retry_at:
            return False
        self._probing = True
        return True

    def leave(self) -> None:
        """The work let in gave no verdict on the backend (e.g. it was done elsewhere)."""
        self._probing = False

    def succeeded(self) -> bool:
        """Record a success; True when it opened a shut gate."""
        reopened = self._failures > 0
        self._failures = 0
        self._probing = False
        return reopened

    def failed(self, floor_s: float = 0.0) -> bool:
        """Record a failure; True when it shut an open gate."""
        shut = self._failures == 0
        self._failures += 1
        self._probing = False
        self._retry_at = time.monotonic() + self._policy.delay(self._failures, floor_s)
        return shut


async def with_retries(
    policy: RetryPolicy,
    attempt: Callable[[], Awaitable[T]],
    *,
    not_here: tuple[type[InviteError], ...] = (),
) -> T:
    """`attempt()` until it succeeds, fails for good, or `policy.attempts` are spent.

    Retryable InviteErrors are retried after a jittered backoff (at least the error's
    `retry_after_s`); `not_here` names retryable errors left for the caller to retry later.
    """
    failures = 0
    while True:
        try:
            return await attempt()
        except InviteError as error:
            failures += 1
            if not error.retryable or isinstance(error, not_here):
                raise
            if failures >= policy.attempts:
                error.message = f"{error.message} (gave up after {failures} tries)"
                error.args = (error.message,)
                raise
            floor_s = error.retry_after_s if isinstance(error, UpstreamError) else 0.0
            await asyncio.sleep(policy.delay(failures, floor_s))
