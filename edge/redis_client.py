"""Opening Redis connections from INVITE_REDIS_URL, with timeouts fit for the hot path."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edge.errors import ConfigError
from edge.logs import redact_url

SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
FEED_HEALTH_CHECK_S = 15


def as_text(value: Any) -> str:
    """A reply value as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


def check_redis_url(url: str) -> str:
    if not url.startswith(SCHEMES):
        raise ConfigError(
            f"INVITE_REDIS_URL={redact_url(url)!r} must start with redis://, rediss://, unix:// "
            "or redis+cluster://"
        )
    return url


def open_redis(url: str, *, timeout_s: float, feed: bool = False, decode: bool = True) -> Redis:
    """A client for `url` whose commands give up after `timeout_s` instead of hanging.

    A `feed` client (pub/sub) has no read timeout, since it waits for messages for hours; a
    periodic health check finds a dead connection instead. `redis+cluster://host:port` opens a
    Redis Cluster client from that seed node.
    """
    check_redis_url(url)
    if "+cluster://" in url:
        cluster = RedisCluster.from_url(
            url.replace("+cluster://", "://", 1),
            decode_responses=decode,
            socket_timeout=None if feed else timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=FEED_HEALTH_CHECK_S if feed else 0,
            # Fail fast here too; a moved slot is still followed by the client itself.
            retry=Retry(NoBackoff(), 1),
        )
        # The command API the edge uses (hashes, streams, pipelines, pub/sub, locks) is the same.
        return cast(Redis, cluster)
    return Redis.from_url(
        url,
        decode_responses=decode,
        socket_timeout=None if feed else timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=FEED_HEALTH_CHECK_S if feed else 0,
        retry_on_timeout=False,
        # Fail fast: the callers decide what a failure means (spool, 503, retry later).
        retry=Retry(NoBackoff(), 0),
    )
