"""One transaction at a time at a SQLite file, handed from one to the next at once.

Why: genhook opens every SQLite transaction with ``BEGIN IMMEDIATE`` (``engine.py``), and
SQLite makes the others wait in its busy handler, which *sleeps* (1, 2, 5, 10 … 100 ms)
between tries instead of waking when the lock is released. With a few dozen API and worker
threads, most of a busy store's time went to those sleeps while the file sat unlocked.
Here waiting transactions queue first on a lock in their process, then on an ``flock`` of a
file beside the database shared by every process (the kernel wakes the next waiter the
moment the holder lets go, and frees the lock of a process that dies); SQLite's own lock
is then always free when a transaction asks for it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backend.private_files import create_private_file


class TurnTimeout(Exception):
    """No turn within the timeout: another thread of this process holds the store."""


class SQLiteTurns:
    def __init__(self, database: Path | None, timeout_seconds: float) -> None:
        """``database``: the SQLite file (``None`` for an in-memory one: turns are then
        only kept within this process)."""
        self._thread_lock = threading.Lock()
        self._timeout = timeout_seconds
        self._lock_path = database.with_name(database.name + ".turns") if database else None
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        if not self._thread_lock.acquire(timeout=self._timeout):
            raise TurnTimeout(f"no turn at the database within {self._timeout:g} s")
        try:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _file(self) -> int | None:
        """The lock file, opened once per process (a forked child opens its own: a lock
        taken through an inherited descriptor would be its parent's)."""
        if self._lock_path is None:
            return None
        if self._fd is None or self._pid != os.getpid():
            if not self._lock_path.exists():
                create_private_file(self._lock_path)
            self._fd = os.open(self._lock_path, os.O_RDWR)
            self._pid = os.getpid()
        return self._fd
