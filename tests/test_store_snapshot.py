"""Reads that must agree with each other see one moment of the database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from backend.store import Store
from backend.store.tables import accounts
from backend.store.types import utcnow


def add_account(store: Store, account_id: str) -> None:
    with store.begin() as conn:
        conn.execute(
            accounts.insert().values(
                id=account_id, email=f"{account_id}@example.com", credits=0,
                signing_secret="whsec_x", created_at=utcnow(),
            )
        )  # fmt: skip


def count(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one())


def test_a_snapshot_does_not_see_a_commit_made_between_its_reads(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite transactions are serialised: no commit can land in between")
    store = Store(database_url)
    try:
        add_account(store, "acct_before")
        with store.snapshot() as conn:
            first = count(conn)
            # Another transaction commits between the two reads
            add_account(store, "acct_between")
            second = count(conn)
        assert first == second == 1
        with store.begin() as conn:
            assert count(conn) == 2
    finally:
        store.dispose()
