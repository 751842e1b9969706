"""What the batchers report: Prometheus metrics per sink, and running totals for logs and tests."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BatcherMetrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, prefix: str = "invite_batcher"
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.lag = Gauge(
            f"{prefix}_lag", "Stream entries not yet in ClickHouse: pending plus unread",
            registry=r,
        )
        self.batch_rows = Histogram(
            f"{prefix}_batch_rows", "Entries per flushed batch",
            buckets=(10, 100, 1000, 5000, 10_000, 25_000, 50_000, 100_000), registry=r,
        )
        self.insert_seconds = Histogram(
            f"{prefix}_insert_seconds", "Duplicate check plus insert of one batch",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=r,
        )
        self.rows_inserted = Counter(
            f"{prefix}_rows_inserted", "Rows inserted into ClickHouse", registry=r
        )
        self.duplicates = Counter(
            f"{prefix}_duplicates_skipped",
            "Entries already in ClickHouse or earlier in the batch", registry=r,
        )
        self.dead_letters = Counter(
            f"{prefix}_dead_letters", "Entries moved to the dead-letter stream", registry=r
        )
        self.failures = Counter(
            f"{prefix}_flush_failures", "Failed flush attempts (retried with backoff)",
            ["error"], registry=r,
        )
        self.claimed = Counter(
            f"{prefix}_claimed", "Entries taken over from idle consumers", registry=r
        )


@dataclass
class BatcherStats:
    inserted: int = 0  # rows written to the sink's table
    duplicates: int = 0  # entries acknowledged without a row: key known, or entry deleted
    dead_letters: int = 0
    batches: int = 0
    lag: int = 0  # entries of the stream not in ClickHouse yet: pending plus unread
    failing_since: float | None = None  # monotonic time of the first failure of a retry run
