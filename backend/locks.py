"""Redis locks that keep two workers from advancing the same job (or sending the same
delivery) at once, and that die with their holder.

They are an optimisation, not the safety net: every state change is also a compare-and-set
on its row in the database (``store.jobs.transition``, the deliveries' ``record_attempt``),
so two holders can never both win, and when Redis is down the lock fails open.

A lock lives ``ttl_seconds`` (short) and is renewed in the background while its step runs,
by redis-py's token-checked ``Lock.reacquire``: a step that takes minutes keeps its lock,
and a worker killed with SIGKILL frees it within ``ttl_seconds``. A step that finds its
lock taken comes back with a growing delay (:func:`busy_retry_delay`), never at once.

Each lock held is remembered with the thread holding it, so a worker that stops before a
step finishes can hand the step's lock back with its message (``backend/shutdown.py``)
instead of leaving the next worker to wait for the lock's TTL.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import redis

from backend import redis_keys

log = logging.getLogger(__name__)

#: First delay before a step that found its lock taken comes back; doubles on every try.
LOCK_BUSY_RETRY_SECONDS = 0.5
#: The longest a busy step waits between tries.
LOCK_BUSY_MAX_RETRY_SECONDS = 20.0


def busy_retry_delay(busy: int) -> float:
    """How long a step waits before its ``busy + 1``-th try, jittered so that duplicates
    spread out: 0.5 s, 1 s, 2 s … up to 20 s."""
    base = min(LOCK_BUSY_RETRY_SECONDS * 2 ** min(busy, 16), LOCK_BUSY_MAX_RETRY_SECONDS)
    return base * random.uniform(0.8, 1.2)


class Renewable(Protocol):
    """What the renewer keeps alive: a redis-py ``Lock``, or a concurrency slot
    (``backend/slots.py``). ``reacquire`` raises ``LockNotOwnedError`` once it is lost."""

    name: str
    timeout: float | None

    def reacquire(self) -> bool: ...

    def release(self) -> None: ...


class _Renewer:
    """One daemon thread per process that renews every held lock a third of its TTL after
    its last renewal, so a lock outlives its step however long the step takes."""

    def __init__(self) -> None:
        self._due: dict[Renewable, float] = {}
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, lock: Renewable) -> None:
        with self._mutex:
            self._due[lock] = time.monotonic() + _renew_period(lock)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="genhook-lock-renewer", daemon=True
                )
                self._thread.start()

    def remove(self, lock: Renewable) -> None:
        with self._mutex:
            self._due.pop(lock, None)

    def _run(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._mutex:
                due = [lock for lock, at in self._due.items() if at <= now]
                for lock in due:
                    self._due[lock] = now + _renew_period(lock)
            for lock in due:
                self._renew(lock)

    def _renew(self, lock: Renewable) -> None:
        try:
            lock.reacquire()
        except redis.exceptions.LockNotOwnedError:
            with self._mutex:
                still_held = lock in self._due
            if still_held:
                # Expired (a pause longer than the TTL, Redis flushed) and maybe taken: the
                # row's compare-and-set still decides between the two holders.
                log.warning("lock %s was lost while its step ran", lock.name)
        except (redis.RedisError, redis.exceptions.LockError) as exc:
            log.warning("could not renew lock %s: %s", lock.name, exc)


def _renew_period(lock: Renewable) -> float:
    return float(lock.timeout or 1) / 3


_renewer = _Renewer()

#: Locks held right now in this process, by the id of the thread holding them.
_held: dict[int, list[Renewable]] = {}
_held_guard = threading.Lock()


@contextmanager
def held(client: redis.Redis, key: str, ttl_seconds: float) -> Iterator[bool]:
    """Try once to take ``key``; yields whether this caller holds it (or Redis is down).
    Held, it is renewed until the block ends, then released if still ours."""
    # thread_local=False: the renewer thread must see the token this thread took it with.
    lock = client.lock(key, timeout=ttl_seconds, blocking=False, thread_local=False)
    try:
        acquired = bool(lock.acquire())
    except redis.RedisError as exc:
        log.warning("lock %s unavailable (%s); continuing without it", key, exc)
        yield True
        return
    if not acquired:
        yield False
        return
    with kept(lock):
        yield True


@contextmanager
def kept(lock: Renewable) -> Iterator[None]:
    """Keep a lock (or slot) this thread just took renewed until the block ends, then
    release it, unless a stopping worker already did (``release_held_by``)."""
    _remember(lock)
    _renewer.add(lock)
    try:
        yield
    finally:
        if _forget(lock):
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


def _remember(lock: Renewable) -> None:
    with _held_guard:
        _held.setdefault(threading.get_ident(), []).append(lock)


def _forget(lock: Renewable) -> bool:
    """Whether the lock was still this thread's to release."""
    with _held_guard:
        mine = _held.get(threading.get_ident(), [])
        found = lock in mine
        if found:
            mine.remove(lock)
        if not mine:
            _held.pop(threading.get_ident(), None)
        return found


def _release(lock: Renewable) -> None:
    _renewer.remove(lock)
    try:
        lock.release()
    except (redis.RedisError, redis.exceptions.LockError) as exc:
        log.warning("could not release lock %s: %s", lock.name, exc)


def job_lock(client: redis.Redis, job_id: str) -> AbstractContextManager[bool]:
    return held(client, redis_keys.job_lock(job_id), redis_keys.JOB_LOCK_TTL_SECONDS)
