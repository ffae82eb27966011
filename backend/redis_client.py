"""Redis connections as genhook wants them: failing fast when Redis is away.

redis-py's default retries with backoff of several seconds; every genhook caller already
has a fallback (the database, or the recovery sweep), so a short, bounded retry is better
than holding an API request or a worker thread.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

#: Seconds to open a connection / wait for an answer.
CONNECT_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 5.0
#: Retries after a connection error, with backoff capped at half a second.
RETRIES = 2


def connect(url: str) -> redis.Redis:
    """A client for ``url``; connections open lazily, on first use."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
        health_check_interval=30,
    )
