"""The SQL layer: every query genhook runs lives in this package (one module per table group)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from backend.store.engine import SQLITE_BUSY_TIMEOUT_SECONDS, create_engine
from backend.store.sqlite_turns import SQLiteTurns

#: Where a connection carries its store's ``before_job_commit`` (see ``store.jobs``).
JOB_WRITE_HOOK = "genhook.before_job_commit"
#: Set on a connection once its transaction ran an INSERT, UPDATE or DELETE.
_WROTE = "genhook.wrote"

#: Per thread: how many writing transactions tried to commit (see ``write_commits``).
_commits = threading.local()


def write_commits() -> int:
    """How many transactions that wrote something this thread has tried to commit, so
    far: a request that failed with none may be run again whole (``backend/api/retry.py``);
    one that tried may have committed, and is not."""
    return int(getattr(_commits, "count", 0))


class Store:
    """A handle on the database: hands out transactions to the query modules."""

    def __init__(self, url: str, *, before_job_commit: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.engine = create_engine(url)
        sa.event.listen(self.engine, "before_execute", _note_writes)
        #: SQLite: transactions take turns (``sqlite_turns.py``); PostgreSQL needs none.
        self._turns: SQLiteTurns | None = None
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database
            path = Path(database) if database and database != ":memory:" else None
            self._turns = SQLiteTurns(path, SQLITE_BUSY_TIMEOUT_SECONDS)
        #: Called with a job's id after its row was changed and before the commit (with
        #: the row locked): the status cache drops its entry there, so a writer that dies
        #: after committing cannot leave an older state cached.
        self.before_job_commit = before_job_commit

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A transaction that commits on success and rolls back on any exception."""
        with self._turn(), self.engine.connect() as conn:
            conn.info[JOB_WRITE_HOOK] = self.before_job_commit
            conn.info[_WROTE] = False
            with conn.begin() as transaction:
                yield conn
                if conn.info[_WROTE]:
                    _commits.count = write_commits() + 1
                transaction.commit()

    @contextmanager
    def snapshot(self) -> Iterator[sa.Connection]:
        """A read-only transaction whose statements all see the same moment.

        PostgreSQL's default READ COMMITTED gives each statement its own snapshot, so two
        reads could straddle another transaction's commit; REPEATABLE READ gives the whole
        transaction one. SQLite's transactions are serialised already.
        """
        if self.engine.dialect.name != "postgresql":
            with self.begin() as conn:
                yield conn
            return
        with self.engine.connect() as raw:
            conn = raw.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _turn(self) -> AbstractContextManager[None]:
        return self._turns.turn() if self._turns is not None else nullcontext()

    def ping(self) -> None:
        with self._turn(), self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"


def _note_writes(conn: sa.Connection, clause: Any, *_: Any) -> None:
    if isinstance(clause, sa.sql.dml.UpdateBase):
        conn.info[_WROTE] = True
