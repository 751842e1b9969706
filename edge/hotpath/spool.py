"""The disk fallback for clicks: an append-only, fsync'd spool, replayed into the stream later.

A writer owns one segment at a time and holds an exclusive flock on it; a segment nobody holds
(rotated, or left by a dead process) can be claimed by any process and replayed. Lines are the
packed click events, one per line, in groups: a header line says whether the group was sent
to Redis before it failed (so a replay must look for it there) or never left the process. A torn
last line from a crash is skipped.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SEGMENT_SUFFIX = ".spool"
SENT_HEADER = b"#sent"
UNSENT_HEADER = b"#unsent"


@dataclass
class Segment:
    path: Path
    handle: IO[bytes]  # holds the claim's flock until released

    def groups(self) -> list[tuple[bool, list[bytes]]]:
        """(maybe already in Redis, events) per group; headerless lines count as maybe sent."""
        self.handle.seek(0)
        groups: list[tuple[bool, list[bytes]]] = []
        sent, events = True, []
        for line in self.handle.read().split(b"\n"):
            if line.startswith(b"{"):
                events.append(line)
            elif line in (SENT_HEADER, UNSENT_HEADER):
                if events:
                    groups.append((sent, events))
                sent, events = line == SENT_HEADER, []
        if events:
            groups.append((sent, events))
        return groups

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        self.handle.close()


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._active: IO[bytes] | None = None
        self._active_path: Path | None = None
        self.appended = 0

    def append(self, events: list[bytes], sent: bool) -> None:
        """Write a group of events and fsync once; blocking, so call it from a thread.

        `sent`: the group was (maybe) written to Redis before the failure.
        """
        if self._active is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{os.getpid()}-{time.time_ns()}{SEGMENT_SUFFIX}"
            handle = open(path, "ab")  # noqa: SIM115 - kept open across calls, closed by rotate()
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._active, self._active_path = handle, path
        header = SENT_HEADER if sent else UNSENT_HEADER
        self._active.write(header + b"\n" + b"\n".join(events) + b"\n")
        self._active.flush()
        os.fsync(self._active.fileno())
        self.appended += len(events)

    def rotate(self) -> None:
        """Close the active segment so that it can be replayed."""
        if self._active is not None:
            self._active.close()
            self._active = None
            self._active_path = None

    def claim(self) -> Iterator[Segment]:
        """Segments no live writer holds, oldest first, each locked for the caller."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}"), key=_segment_age):
            if path == self._active_path:
                continue
            try:
                handle = open(path, "rb")  # noqa: SIM115 - handed to the Segment, which closes it
            except FileNotFoundError:
                continue  # another process replayed it meanwhile
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            if not path.exists():
                handle.close()
                continue
            yield Segment(path, handle)

    def count_events(self) -> int:
        """Events in every segment on disk, this process's and others'."""
        if not self.directory.is_dir():
            return 0
        total = 0
        for path in self.directory.glob(f"*{SEGMENT_SUFFIX}"):
            try:
                with open(path, "rb") as handle:
                    total += sum(1 for line in handle if line.startswith(b"{"))
            except FileNotFoundError:
                continue
        return total


def _segment_age(path: Path) -> int:
    try:
        return int(path.stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return 0
