"""Read-only transactions do not queue behind writers (SQLite's write lock), and still see
only committed data."""

from __future__ import annotations

import time

import sqlalchemy as sa

from backend.store import Store
from backend.store.tables import accounts
from backend.store.types import utcnow


def count_accounts(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one())


def test_a_read_goes_ahead_while_another_transaction_holds_the_write_lock(
    database_url: str,
) -> None:
    # Given a writer in the middle of a transaction (on SQLite: holding the write lock)
    writer, reader = Store(database_url), Store(database_url)
    with writer.begin() as conn:
        conn.execute(
            accounts.insert().values(
                id="acct_w",
                email="w@example.com",
                credits=1,
                signing_secret="s",
                created_at=utcnow(),
            )
        )

        # When another connection reads
        started = time.monotonic()
        with reader.read() as read_conn:
            seen = count_accounts(read_conn)
        waited = time.monotonic() - started

        # Then it answers at once (a write transaction would wait for the lock), without the
        # uncommitted row
        assert waited < 1.0 and seen == 0
    with reader.read() as read_conn:
        assert count_accounts(read_conn) == 1
    writer.dispose()
    reader.dispose()
