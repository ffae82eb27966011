"""Concurrency caps that hold across processes and hosts: counting semaphores in Redis.

A cap of N on a key lets at most N holders in at once, wherever they run. A holder that
finds every slot taken is told so at once (it never waits: the caller comes back later),
and a holder that dies frees its slot within ``ttl_seconds``: each hold expires unless it
is renewed, which the same background renewer as the locks does while the holder works
(``backend/locks.py``). A worker that stops before its step ends releases the step's
slots with its locks (``backend/shutdown.py``).

Like the locks, a cap fails open: with Redis down, every caller is let in (and that is
logged), because refusing would stop every delivery rather than only slow ones.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

import redis
from redis.commands.core import Script

from backend.locks import kept

log = logging.getLogger(__name__)

_TAKE_OR_RENEW = resources.files("backend").joinpath("slots.lua").read_text()


class Slot:
    """One hold on a capped key, with the interface the lock renewer expects."""

    def __init__(self, client: redis.Redis, name: str, limit: int, ttl_seconds: float) -> None:
        self.name = name
        self.timeout: float | None = ttl_seconds
        self.limit = limit
        self.token = secrets.token_hex(8)
        self._client = client
        self._script: Script = client.register_script(_TAKE_OR_RENEW)

    def acquire(self) -> bool:
        """Take a slot if one is free; never waits."""
        return self._call("take")

    def reacquire(self) -> bool:
        """Push the hold's expiry a TTL away; raises ``LockNotOwnedError`` if it is gone."""
        if not self._call("renew"):
            raise redis.exceptions.LockNotOwnedError(f"slot of {self.name} expired")
        return True

    def release(self) -> None:
        self._client.zrem(self.name, self.token)

    def _call(self, mode: str) -> bool:
        ttl_ms = max(1, round(float(self.timeout or 1) * 1000))
        return bool(self._script(keys=[self.name], args=[mode, self.token, self.limit, ttl_ms]))


@contextmanager
def slot(client: redis.Redis, key: str, limit: int, ttl_seconds: float) -> Iterator[bool]:
    """Try once to take one of ``limit`` slots of ``key``; yields whether this caller got
    one (or Redis is down). Held, it is renewed until the block ends, then given back."""
    hold = Slot(client, key, limit, ttl_seconds)
    try:
        taken = hold.acquire()
    except redis.RedisError as exc:
        log.warning("concurrency cap %s unavailable (%s); continuing without it", key, exc)
        yield True
        return
    if not taken:
        yield False
        return
    with kept(hold):
        yield True


def holders(client: redis.Redis, key: str) -> int:
    """How many holds ``key`` has, expired ones included until the next take drops them
    (for logs and tests)."""
    return int(client.zcard(key))
