"""`invite events import FILE`: years of a broker's events (CSV or NDJSON) into the event stream.

The same checks and the same intake as `POST /api/events`, 1,000 lines at a time. Safe to run
again: eventIds already accepted are duplicates, and the lines a finished run committed are
remembered (under the data dir, per file), so a rerun after a stop resumes there. A bad line stops
the import with its number and reason (exit 1), or, with `--skip-bad OUT`, is written to OUT and
the rest goes on.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TextIO

import orjson
from tqdm import tqdm

from edge.cli.operations import redis_url_of
from edge.config import Settings
from edge.errors import CliError, InvalidEvents, InvalidInput
from edge.events.intake import EventIntake
from edge.events.model import check_events
from edge.exact_json import loads
from edge.redis_client import open_redis

CHUNK: Final = 1000
CSV_FIELDS: Final = (
    "eventId", "type", "ts", "userId", "ctidTraderAccountId", "amount", "originalAmount",
    "originalCurrency", "symbol", "lots", "commission", "markup", "positionId", "openedAt",
    "reverses",
)
_NUMBERS_IN_CSV: Final = frozenset({"ts", "openedAt"})  # ms when all digits, else ISO 8601


def progress_file(settings: Settings, path: Path) -> Path:
    """Where an import of this file notes how far it got (per path and size)."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return settings.data_dir / "imports" / f"{key.hexdigest()[:24]}.done"


def read_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, event) of a .csv (a header, the API's field names) or .ndjson file; an
    unreadable line gives its number and the exception instead of an event."""
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            yield from _csv_lines(handle)
        else:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, loads(line)
                except ValueError as exc:
                    yield number, exc


def _csv_lines(handle: TextIO) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(handle)
    unknown = set(reader.fieldnames or ()) - set(CSV_FIELDS)
    if unknown or not reader.fieldnames:
        raise CliError(f"the CSV header names unknown columns {sorted(unknown)}; use "
                       f"{','.join(CSV_FIELDS)}")
    for row in reader:
        event: dict[str, Any] = {}
        for name, value in row.items():
            if value is None or value == "":
                continue
            event[name] = int(value) if name in _NUMBERS_IN_CSV and value.isascii() and \
                value.isdigit() else value
        yield reader.line_num, event


def import_events(settings: Settings, path: Path, skip_bad: Path | None) -> int:
    import asyncio

    if path.suffix.lower() not in (".csv", ".ndjson", ".jsonl"):
        raise CliError(f"{path} must be a .csv or .ndjson file")
    if not path.is_file():
        raise CliError(f"{path} does not exist")
    return asyncio.run(_import(settings, path, skip_bad))


async def _import(settings: Settings, path: Path, skip_bad: Path | None) -> int:
    done_file = progress_file(settings, path)
    resume_after = int(done_file.read_text()) if done_file.exists() else 0
    redis = open_redis(redis_url_of(settings), timeout_s=30.0)
    intake = EventIntake(redis)
    accepted = duplicates = skipped = 0
    bad_out: TextIO | None = skip_bad.open("w", encoding="utf-8") if skip_bad else None
    bar = tqdm(total=_count_lines(path), initial=resume_after, unit=" lines", unit_scale=True,
               desc=path.name, file=sys.stderr, dynamic_ncols=True)
    try:
        chunk: list[tuple[int, Any]] = []
        last_line = resume_after
        for number, event in read_lines(path):
            if number <= resume_after:
                continue
            chunk.append((number, event))
            if len(chunk) == CHUNK:
                result = await _submit(intake, chunk, bad_out)
                accepted, duplicates, skipped = (accepted + result[0], duplicates + result[1],
                                                 skipped + result[2])
                last_line = chunk[-1][0]
                _note(done_file, last_line)
                bar.n = last_line
                bar.set_postfix(accepted=accepted, duplicates=duplicates, refresh=False)
                bar.refresh()
                chunk = []
        if chunk:
            result = await _submit(intake, chunk, bad_out)
            accepted, duplicates, skipped = (accepted + result[0], duplicates + result[1],
                                             skipped + result[2])
            last_line = chunk[-1][0]
            _note(done_file, last_line)
        bar.n = max(bar.n, last_line)
        bar.refresh()
    finally:
        bar.close()
        if bad_out is not None:
            bad_out.close()
        await redis.aclose()
    resumed = f" (resumed after line {resume_after})" if resume_after else ""
    print(orjson.dumps({"accepted": accepted, "duplicates": duplicates,
                        "skipped": skipped}).decode())
    print(f"imported {path}{resumed}: {accepted} accepted, {duplicates} duplicates, "
          f"{skipped} bad lines skipped", file=sys.stderr)
    return 0


async def _submit(
    intake: EventIntake, chunk: list[tuple[int, Any]], bad_out: TextIO | None
) -> tuple[int, int, int]:
    """(accepted, duplicates, skipped) of one chunk; a bad line stops the import (exit 1, the
    first bad line named) unless bad lines go to `bad_out`, when the rest goes in."""
    faults: dict[int, list[dict[str, str]]] = {
        number: [{"field": "", "message": f"not JSON ({str(event)[:100]})"}]
        for number, event in chunk if isinstance(event, Exception)
    }
    readable = [(number, event) for number, event in chunk if number not in faults]
    try:
        events = check_events([event for _, event in readable], source="import")
        if not faults:
            result = await intake.submit(events)
            return result.accepted, result.duplicates, 0
    except InvalidEvents as refused:
        for detail in refused.details:
            faults.setdefault(readable[detail["index"]][0], []).append(
                {"field": detail["field"], "message": detail["message"]}
            )
    first = min(faults)
    if bad_out is None:
        fault = faults[first][0]
        raise InvalidInput(  # exit 1: the file, not the command, is at fault
            f"line {first}: {fault['field'] or 'the line'}: {fault['message']}; fix it and run "
            "the import again (it resumes), or pass --skip-bad FILE"
        )
    events_by_line = dict(chunk)
    for number in sorted(faults):
        bad_out.write(orjson.dumps({"line": number, "event": _shown(events_by_line[number]),
                                    "errors": faults[number]}).decode() + "\n")
    kept = [(number, event) for number, event in chunk if number not in faults]
    if not kept:
        return 0, 0, len(faults)
    accepted, duplicates, skipped = await _submit(intake, kept, bad_out)
    return accepted, duplicates, skipped + len(faults)


def _shown(event: Any) -> Any:
    return str(event) if isinstance(event, Exception) else event


def _note(done_file: Path, line: int) -> None:
    done_file.parent.mkdir(parents=True, exist_ok=True)
    done_file.write_text(f"{line}\n")


def _count_lines(path: Path) -> int:
    """The file's lines, for the bar's total (read in large blocks: a second per GB or so)."""
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return lines
