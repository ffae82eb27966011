"""Redis locks that keep two workers from advancing the same job at once.

They are an optimisation, not the safety net: every state change is also guarded in the
database (``store.jobs.transition``), so when Redis is down the lock fails open.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import redis

from backend import redis_keys

log = logging.getLogger(__name__)

#: A step that finds its job locked is re-enqueued this much later, never dropped: the
#: holder may be the previous step still finishing, and a stale message is recognised
#: (and dropped) by the step itself once it gets the lock.
LOCK_BUSY_RETRY_SECONDS = 0.5


@contextmanager
def held(client: redis.Redis, key: str, ttl_seconds: int) -> Iterator[bool]:
    """Try once to take ``key``; yields whether this caller holds it (or Redis is down)."""
    lock = client.lock(key, timeout=ttl_seconds, blocking=False)
    try:
        acquired = bool(lock.acquire())
    except redis.RedisError as exc:
        log.warning("lock %s unavailable (%s); continuing without it", key, exc)
        yield True
        return
    try:
        yield acquired
    finally:
        if acquired:
            try:
                lock.release()
            except (redis.RedisError, redis.exceptions.LockError) as exc:
                log.warning("could not release lock %s: %s", key, exc)


def job_lock(client: redis.Redis, job_id: str) -> AbstractContextManager[bool]:
    return held(client, redis_keys.job_lock(job_id), redis_keys.JOB_LOCK_TTL_SECONDS)
