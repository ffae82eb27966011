"""Concurrency caps that hold across processes and hosts: counting semaphores in Redis.

A cap of N on a key lets at most N holders in at once, wherever they run. A holder that
finds every slot taken is told so at once (it never waits by itself: the caller comes back
later, or waits a bounded moment for a release with ``wait_for_free``), and a holder that
dies frees its slot within ``ttl_seconds``: each hold expires unless it is renewed, which
the same background renewer as the locks does while the holder works (``backend/locks.py``).
A worker that stops before its step ends releases the step's slots with its locks
(``backend/shutdown.py``).

Like the locks, a cap fails open: with Redis down, every caller is let in (and that is
logged), because refusing would stop every delivery rather than only slow ones.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources

import redis
from redis.commands.core import Script
from redis.exceptions import RedisError

from backend.locks import kept

log = logging.getLogger(__name__)

_TAKE_OR_RENEW = resources.files("backend").joinpath("slots.lua").read_text()
#: A release's mark for waiters lasts this long (a waiter that comes later takes again).
_FREED_TTL_MS = 1000


class Slots:
    """One hold on a slot of each of several capped keys, taken and given back together
    (one round trip each way), with the interface the lock renewer expects."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Sequence[str],
        limits: Sequence[int],
        ttl_seconds: float,
        *,
        waited: Sequence[str] = (),
    ) -> None:
        self.keys = list(keys)
        #: Keys whose releases are marked for waiters (``wait_for_free``).
        self.waited = list(waited)
        #: A ``SET NX EX`` made with the release, in its call (``write_on_release``).
        self._write: tuple[str, str, int] | None = None
        #: Whether the release ran, those writes included.
        self.released = False
        self.name = " + ".join(self.keys)
        self.timeout: float | None = ttl_seconds
        self.limits = list(limits)
        self.token = secrets.token_hex(8)
        self._client = client
        self._script: Script = _script_for(client)

    def acquire(self) -> int:
        """Take a slot of every key if each has one free; never waits. Returns 0 if taken,
        else the 1-based index of the first key whose slots were all taken."""
        return self.acquire_and_get(None)[0]

    def acquire_and_get(self, key: str | None) -> tuple[int, bytes | None]:
        """``acquire``, and the value of ``key`` read in the same call."""
        refused, value = self._call("take", [key] if key else [], *self.limits)
        return refused, value

    def reacquire(self) -> bool:
        """Push the holds' expiry a TTL away; raises ``LockNotOwnedError`` if one is gone."""
        if self._call("renew", [])[0]:
            raise redis.exceptions.LockNotOwnedError(f"slot of {self.name} expired")
        return True

    def write_on_release(self, key: str, value: str, ttl_seconds: int) -> None:
        """Set ``key`` (unless it is set) when the slots are given back, in the same call;
        ``released`` then tells whether it was done. One write per hold."""
        self._write = (key, value, ttl_seconds)

    def release(self) -> None:
        """Give every slot back in one call, marking each ``waited`` key for a waiter
        (``wait_for_free``), and make the write asked for with ``write_on_release``."""
        marks = [freed_key(key) for key in self.waited]
        extra: list[str | int] = [len(marks), _FREED_TTL_MS]
        write_keys: list[str] = []
        if self._write is not None:
            key, value, ttl = self._write
            write_keys, extra = [key], [*extra, value, ttl]
        self._call("release", [*marks, *write_keys], *extra)
        self.released = True

    def _call(
        self, mode: str, extra_keys: Sequence[str], *args: str | int
    ) -> tuple[int, bytes | None]:
        ttl_ms = max(1, round(float(self.timeout or 1) * 1000))
        refused, *rest = self._script(
            keys=[*self.keys, *extra_keys],
            args=[mode, self.token, ttl_ms, len(self.keys), *args],
        )
        return int(refused), (rest[0] if rest else None)


class Slot(Slots):
    """One hold on a single capped key."""

    def __init__(self, client: redis.Redis, name: str, limit: int, ttl_seconds: float) -> None:
        super().__init__(client, [name], [limit], ttl_seconds)
        self.name = name
        self.limit = limit

    def acquire(self) -> bool:
        """Take a slot if one is free; never waits."""
        return super().acquire() == 0


@contextmanager
def slot(client: redis.Redis, key: str, limit: int, ttl_seconds: float) -> Iterator[bool]:
    """Try once to take one of ``limit`` slots of ``key``; yields whether this caller got
    one (or Redis is down). Held, it is renewed until the block ends, then given back."""
    with slots(client, [key], [limit], ttl_seconds) as refused:
        yield refused == 0


@contextmanager
def slots(
    client: redis.Redis,
    keys: Sequence[str],
    limits: Sequence[int],
    ttl_seconds: float,
    *,
    waited: Sequence[str] = (),
) -> Iterator[int]:
    """Try once to take a slot of every key (all or none); yields 0 if this caller holds
    them (or Redis is down), else the 1-based index of the first full key. Held, they are
    renewed until the block ends, then given back (and ``waited`` keys' waiters told)."""
    with slots_and_value(client, keys, limits, ttl_seconds, waited=waited) as (refused, _, _):
        yield refused


@contextmanager
def slots_and_value(
    client: redis.Redis,
    keys: Sequence[str],
    limits: Sequence[int],
    ttl_seconds: float,
    *,
    waited: Sequence[str] = (),
    read: str | None = None,
) -> Iterator[tuple[int, bytes | RedisError | None, Slots | None]]:
    """``slots``, also yielding the value of ``read`` fetched in the same round trip (the
    ``RedisError`` instead when Redis could not be asked), and the hold while it is held."""
    hold = Slots(client, keys, limits, ttl_seconds, waited=waited)
    value: bytes | RedisError | None = None
    try:
        if read is None:
            refused = hold.acquire()
        else:
            refused, value = hold.acquire_and_get(read)
    except RedisError as exc:
        log.warning("concurrency cap %s unavailable (%s); continuing without it", hold.name, exc)
        yield 0, exc, None
        return
    if refused:
        yield refused, value, None
        return
    with kept(hold):
        yield 0, value, hold


def wait_for_free(client: redis.Redis, key: str, seconds: float) -> bool:
    """Wait at most ``seconds`` for a holder of ``key`` to give its slot back; whether one
    did (the caller may then try again: another waiter may have been quicker). Each
    release leaves one mark, so a waiter that comes just after a release is not kept
    waiting for the next one."""
    try:
        return client.blpop([freed_key(key)], timeout=seconds) is not None
    except redis.RedisError as exc:
        log.warning("could not wait for a slot of %s: %s", key, exc)
        return False


def freed_key(key: str) -> str:
    """The list a release of ``key``'s slots marks (``redis_keys``: ``…:freed``)."""
    return f"{key}:freed"


_scripts: dict[int, Script] = {}


def _script_for(client: redis.Redis) -> Script:
    """The registered script, once per client (registering hashes the source each time)."""
    script = _scripts.get(id(client))
    if script is None or script.registered_client is not client:
        script = _scripts[id(client)] = client.register_script(_TAKE_OR_RENEW)
    return script


def holders(client: redis.Redis, key: str) -> int:
    """How many holds ``key`` has, expired ones included until the next take drops them
    (for logs and tests)."""
    return int(client.zcard(key))
