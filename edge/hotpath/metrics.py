"""Prometheus metrics of one edge process: requests, redirects by kind, click append, spool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from edge.hotpath.classify import Kind

__all__ = ["CONTENT_TYPE_LATEST", "EdgeMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class FileCounter(Collector):
    """A counter another process keeps in a file (the supervisor of `invite run`'s private
    Redis); absent while the file is."""

    def __init__(self, name: str, documentation: str, path: Path) -> None:
        self._name, self._documentation, self._path = name, documentation, path

    def collect(self) -> Iterator[CounterMetricFamily]:
        try:
            value = int(self._path.read_text().strip() or 0)
        except (OSError, ValueError):
            return
        yield CounterMetricFamily(self._name, self._documentation, value=value)


class EdgeMetrics:
    def __init__(self, redis_restarts_file: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "invite_requests", "HTTP requests by route", ["route"], registry=r
        )
        redirects = Counter(
            "invite_redirects", "Answered /r/ requests by kind and outcome",
            ["kind", "outcome"], registry=r,
        )
        self._redirects = redirects
        self._redirect_children: dict[tuple[Kind, str], Counter] = {}
        self.append_seconds = Histogram(
            "invite_click_append_seconds", "Time to acknowledge one batch of clicks",
            ["sink"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "invite_click_batch_size", "Clicks per group commit", buckets=_BATCH_BUCKETS, registry=r
        )
        self.spooled = Counter(
            "invite_clicks_spooled", "Clicks written to the disk spool", registry=r
        )
        self.replayed = Counter(
            "invite_clicks_replayed", "Spooled clicks replayed into the stream", registry=r
        )
        self.replay_duplicates = Counter(
            "invite_clicks_replay_skipped",
            "Spooled clicks already in the stream, skipped on replay", registry=r,
        )
        self.lost = Counter(
            "invite_clicks_lost", "Clicks neither Redis nor the spool accepted", registry=r
        )
        self.spool_depth = Gauge(
            "invite_spool_depth", "Clicks in the disk spool awaiting replay", registry=r
        )
        self.redis_up = Gauge(
            "invite_redis_up", "1 while clicks go to Redis, 0 while they go to the spool",
            registry=r,
        )
        self.errors = Counter(
            "invite_redirect_errors", "Redirects answered by the safety net", registry=r
        )
        self.redis_up.set(1)
        if redis_restarts_file is not None:
            r.register(FileCounter(
                "invite_private_redis_restarts", "Restarts of the private Redis of `invite run`",
                redis_restarts_file,
            ))

    def redirect(self, kind: Kind, outcome: str) -> None:
        child = self._redirect_children.get((kind, outcome))
        if child is None:
            child = self._redirects.labels(kind.value, outcome)
            self._redirect_children[(kind, outcome)] = child
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
