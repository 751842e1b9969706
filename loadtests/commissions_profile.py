"""Where the time and the memory of `make bench-commissions` go: the embedded engine opened with
its query log on, each phase's statements read back from `system.query_log` (duration, ClickHouse's
peak memory, rows read and written) and the process's own peak RSS per phase.

chDB keeps no query log unless its configuration asks for one; `open_engine` opens the same
clickhouse-connect chDB client as `analytics.clickhouse.open_clickhouse` does, plus a config file
with a `<query_log>` section.
"""

from __future__ import annotations

import re
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import clickhouse_connect

from analytics.clickhouse import Client
from analytics.schema import DATABASE

QUERY_LOG_XML: Final = """<clickhouse>
  <query_log>
    <database>system</database>
    <table>query_log</table>
    <flush_interval_milliseconds>1000</flush_interval_milliseconds>
  </query_log>
</clickhouse>
"""
# Statements of the ledger, the worker and the benchmark, by what they do.
LABELS: Final = (
    ("trade lines", r"INSERT INTO invite\.commissions_\w+ .*'rebate'"),
    ("CPA lines", r"INSERT INTO invite\.commissions_\w+ .*first_deposits"),
    ("adjustments kept (FINAL)",
     r"INSERT INTO invite\.commissions_staging SELECT \* FROM invite\.commissions FINAL"),
    ("swap in (REPLACE PARTITION)", r"REPLACE PARTITION"),
    ("line count (FINAL)", r"SELECT count\(\) FROM invite\.commissions FINAL"),
    ("changed lines written",
     r"INSERT INTO invite\.commissions SELECT \* FROM invite\.commissions_scratch"),
    ("lines no longer held marked", r"INSERT INTO invite\.commissions SELECT \* REPLACE"),
    ("rows counted", r"SELECT count\(\) FROM invite\.commissions\s*(FORMAT|$)"),
    ("truncate", r"^TRUNCATE"),
    ("traded symbols", r"SELECT DISTINCT symbol FROM invite\.events_credited"),
    ("users changed since", r"groupUniqArray\(formatDateTime"),
    ("tiers: downline figures", r"arrayJoin\(arrayPushBack\(ancestors"),
    ("tiers: stored", r"FROM invite\.commission_tiers WHERE period"),
    ("tiers: written", r"commission_tiers"),
    ("plans written", r"commission_(plans|rebates)"),
    ("timeline read", r"FROM invite\.commission_timeline ORDER BY"),
    ("months with events", r"UNION DISTINCT SELECT DISTINCT formatDateTime"),
    ("closed months' lines (adjustments)", r"FROM invite\.commissions FINAL"),
    ("baseline copy", r"INSERT INTO bench\.\w+_copy"),
    ("new trades inserted", r"INSERT INTO invite\.(events|events_credited)\b"),
)
_COMPILED: Final = tuple((label, re.compile(pattern, re.S)) for label, pattern in LABELS)
_LOG: Final = """
SELECT query, query_duration_ms, memory_usage, read_rows, written_rows,
    (ProfileEvents['UserTimeMicroseconds'] + ProfileEvents['SystemTimeMicroseconds']) / 1e6
FROM system.query_log
WHERE type = 'QueryFinish' AND is_initial_query
    AND query_start_time_microseconds >= fromUnixTimestamp64Micro({first:Int64})
    AND query_start_time_microseconds <= fromUnixTimestamp64Micro({last:Int64})
    AND query NOT LIKE '%system.query_log%' AND query NOT LIKE 'SET %'
ORDER BY query_start_time_microseconds
"""


def label(query: str) -> str:
    text = " ".join(query.split())
    for name, pattern in _COMPILED:
        if pattern.search(text):
            return name
    return text[:60]


@dataclass
class Statement:
    """One kind of statement in a phase: how many ran, their total and longest durations,
    ClickHouse's peak memory for one of them, rows read and written."""

    label: str
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    cpu_s: float = 0.0
    peak_mb: float = 0.0
    read_rows: int = 0
    written_rows: int = 0


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    cpu_s: float = 0.0  # the process's CPU time (every thread, chDB's included): less noisy
    rss_peak_mb: float = 0.0  # the process's peak resident memory during the phase
    engine_peak_mb: float = 0.0  # ClickHouse's peak memory of one statement of the phase
    statements: list[Statement] = field(default_factory=list)
    window: tuple[int, int] = (0, 0)  # µs since the epoch


def open_engine(directory: Path, config_dir: Path) -> Client:
    """A clickhouse-connect client on embedded ClickHouse in `directory`, query log on."""
    config_dir.mkdir(parents=True, exist_ok=True)
    config = config_dir / "query_log.xml"
    config.write_text(QUERY_LOG_XML)
    client = clickhouse_connect.get_client(
        interface="chdb", path=str(directory), chdb_options={"config-file": str(config)})
    client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    client.database = DATABASE
    return client


def _reset_peak_rss() -> bool:
    """Start the kernel's peak-RSS count (VmHWM) again; False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """VmHWM: the peak resident memory since the last reset (else since the process began)."""
    try:
        found = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    except OSError:
        found = None
    kb = int(found.group(1)) if found else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measured(name: str) -> Iterator[Phase]:
    """Time a phase and its peak RSS; `statements()` fills in what ClickHouse did."""
    phase = Phase(name)
    _reset_peak_rss()
    first_us = time.time_ns() // 1000
    started, cpu = time.perf_counter(), _cpu_s()
    try:
        yield phase
    finally:
        phase.seconds = time.perf_counter() - started
        phase.cpu_s = _cpu_s() - cpu
        phase.rss_peak_mb = peak_rss_mb()
        phase.window = (first_us, time.time_ns() // 1000)


def statements(client: Client, phase: Phase) -> Phase:
    """The phase's statements from the query log, grouped by label, in order of appearance."""
    client.command("SYSTEM FLUSH LOGS")
    rows = client.query(_LOG, parameters={"first": phase.window[0],
                                          "last": phase.window[1]}).result_rows
    grouped: dict[str, Statement] = {}
    for query, duration_ms, memory, read_rows, written_rows, cpu_s in rows:
        kind = label(str(query))
        entry = grouped.setdefault(kind, Statement(kind))
        entry.count += 1
        entry.total_s += int(duration_ms) / 1000
        entry.max_s = max(entry.max_s, int(duration_ms) / 1000)
        entry.cpu_s += float(cpu_s)
        entry.peak_mb = max(entry.peak_mb, int(memory) / 2**20)
        entry.read_rows += int(read_rows)
        entry.written_rows += int(written_rows)
    phase.statements = list(grouped.values())
    phase.engine_peak_mb = max((s.peak_mb for s in phase.statements), default=0.0)
    return phase


def breakdown(phase: Phase) -> list[str]:
    """Markdown rows: the phase's statements, longest total first."""
    lines = ["| statement | runs | total s | longest s | share | CPU s | CH peak MB | rows read "
             "| rows written |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in sorted(phase.statements, key=lambda s: -s.total_s):
        if s.total_s < 0.005:
            continue
        share = s.total_s / phase.seconds if phase.seconds else 0.0
        lines.append(f"| {s.label} | {s.count} | {s.total_s:.2f} | {s.max_s:.2f} | {share:.0%} "
                     f"| {s.cpu_s:.1f} | {s.peak_mb:,.0f} | {s.read_rows:,} | "
                     f"{s.written_rows:,} |")
    return lines
