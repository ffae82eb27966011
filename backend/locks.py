"""Redis locks that keep two workers from advancing the same job at once.

They are an optimisation, not the safety net: every state change is also guarded in the
database (``store.jobs.transition``), so when Redis is down the lock fails open.

Each lock held is remembered with the thread holding it, so a worker that stops before a
step finishes can hand the step's lock back with its message (``backend/shutdown.py``)
instead of leaving the next worker to wait for the lock's TTL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager

import redis
from redis.lock import Lock

from backend import redis_keys

log = logging.getLogger(__name__)

#: A step that finds its job locked is re-enqueued this much later, never dropped: the
#: holder may be the previous step still finishing, and a stale message is recognised
#: (and dropped) by the step itself once it gets the lock.
LOCK_BUSY_RETRY_SECONDS = 0.5

#: Locks held right now in this process, by the id of the thread holding them.
_held: dict[int, list[Lock]] = {}
_held_guard = threading.Lock()


@contextmanager
def held(client: redis.Redis, key: str, ttl_seconds: int) -> Iterator[bool]:
    """Try once to take ``key``; yields whether this caller holds it (or Redis is down)."""
    # Not thread-local: on shutdown another thread may release it (``release_held_by``).
    lock = client.lock(key, timeout=ttl_seconds, blocking=False, thread_local=False)
    try:
        acquired = bool(lock.acquire())
    except redis.RedisError as exc:
        log.warning("lock %s unavailable (%s); continuing without it", key, exc)
        yield True
        return
    if acquired:
        _remember(lock)
    try:
        yield acquired
    finally:
        if acquired and _forget(lock):  # else a stopping worker already released it
            _release(lock)


def release_held_by(thread_ids: Iterable[int]) -> int:
    """Release every lock these threads hold (a stopping worker gives up their steps);
    returns how many. The token check keeps a lock that already expired and was taken by
    another worker untouched."""
    with _held_guard:
        locks = [lock for tid in thread_ids for lock in _held.pop(tid, [])]
    for lock in locks:
        _release(lock)
    return len(locks)


def _remember(lock: Lock) -> None:
    with _held_guard:
        _held.setdefault(threading.get_ident(), []).append(lock)


def _forget(lock: Lock) -> bool:
    """Whether the lock was still this thread's to release."""
    with _held_guard:
        mine = _held.get(threading.get_ident(), [])
        found = lock in mine
        if found:
            mine.remove(lock)
        if not mine:
            _held.pop(threading.get_ident(), None)
        return found


def _release(lock: Lock) -> None:
    try:
        lock.release()
    except (redis.RedisError, redis.exceptions.LockError) as exc:
        log.warning("could not release lock %s: %s", lock.name, exc)


def job_lock(client: redis.Redis, job_id: str) -> AbstractContextManager[bool]:
    return held(client, redis_keys.job_lock(job_id), redis_keys.JOB_LOCK_TTL_SECONDS)
