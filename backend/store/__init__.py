"""The SQL layer: every query genhook runs lives in this package (one module per table group)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from backend.store.engine import READ_ONLY_OPTION, create_engine


class Store:
    """A handle on the database: hands out transactions to the query modules."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A transaction that commits on success and rolls back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A transaction that only reads. On SQLite it does not take the write lock (WAL
        gives it a consistent snapshot), so reads never queue behind writers."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY_OPTION: True})
            with conn.begin():
                yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"
