"""Opening Redis connections from INVITE_REDIS_URL, with timeouts fit for the hot path."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edge.errors import ConfigError

SCHEMES = ("redis://", "rediss://", "unix://")
FEED_HEALTH_CHECK_S = 15


def check_redis_url(url: str) -> str:
    if url.startswith("redis+cluster://"):
        raise ConfigError(
            "INVITE_REDIS_URL: redis+cluster:// is not supported by this version yet; "
            "point it at a primary (redis://host:port) instead"
        )
    if not url.startswith(SCHEMES):
        raise ConfigError(
            f"INVITE_REDIS_URL={url.split('@')[-1]!r} must start with redis://, rediss:// or unix://"
        )
    return url


def open_redis(url: str, *, timeout_s: float, feed: bool = False, decode: bool = True) -> Redis:
    """A client for `url` whose commands give up after `timeout_s` instead of hanging.

    A `feed` client (pub/sub) has no read timeout, since it waits for messages for hours; a
    periodic health check finds a dead connection instead.
    """
    return Redis.from_url(
        check_redis_url(url),
        decode_responses=decode,
        socket_timeout=None if feed else timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=FEED_HEALTH_CHECK_S if feed else 0,
        retry_on_timeout=False,
        # Fail fast: the callers decide what a failure means (spool, 503, retry later).
        retry=Retry(NoBackoff(), 0),
    )
