"""The Dramatiq broker every process shares: Redis, with genhook's retry policy."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries

from backend.redis_client import connect
from backend.shutdown import RequeueUnfinished

#: Retries of an actor that raised (a database hiccup, say): few and quick, because the
#: recovery sweep covers anything that still fails.
MAX_ACTOR_RETRIES = 5
MIN_RETRY_BACKOFF_MS = 1_000
MAX_RETRY_BACKOFF_MS = 30_000


def build_broker(redis_url: str) -> RedisBroker:
    broker = RedisBroker(client=connect(redis_url))
    for middleware in list(broker.middleware):
        if isinstance(middleware, Retries):
            broker.middleware.remove(middleware)
    broker.add_middleware(
        Retries(
            max_retries=MAX_ACTOR_RETRIES,
            min_backoff=MIN_RETRY_BACKOFF_MS,
            max_backoff=MAX_RETRY_BACKOFF_MS,
        )
    )
    broker.add_middleware(RequeueUnfinished())
    return broker


def install_broker(redis_url: str) -> RedisBroker:
    """Build the broker and make it Dramatiq's global one, before any actor is declared."""
    broker = build_broker(redis_url)
    dramatiq.set_broker(broker)
    return broker
