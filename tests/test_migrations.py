"""Migrations build exactly the schema ``backend/store/tables.py`` describes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from backend.store.engine import create_engine
from backend.store.migrate import current_revision, downgrade, head_revision, upgrade
from backend.store.tables import metadata
from tests.conftest import DATABASES, PG_URL


def test_the_migrated_schema_matches_the_tables(database_url: str) -> None:
    engine = create_engine(database_url)
    upgrade(engine)  # idempotent on an already migrated database
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


def test_a_fresh_database_is_brought_to_head(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision() is not None
    names = set(sa.inspect(engine).get_table_names())
    assert {"accounts", "api_keys", "jobs", "credit_ledger", "deliveries"} <= names
    engine.dispose()


@pytest.fixture(params=DATABASES)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty database: a new SQLite file, or a scratch schema in the test PostgreSQL."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS migration_check CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA migration_check"))
    engine = create_engine(f"{PG_URL}?options=-csearch_path%3Dmigration_check")
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA migration_check CASCADE"))
    admin.dispose()


def test_deliveries_written_before_0002_stay_deliverable(empty_database: sa.Engine) -> None:
    # Given a database at revision 0001 with a pending and a delivered delivery
    upgrade(empty_database, "0001")
    now = "2026-11-20 10:00:00+00:00"
    with empty_database.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO accounts (id, email, credits, signing_secret, created_at) "
                "VALUES ('acct_1', 'a@example.com', 0, 'whsec_x', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO jobs (id, account_id, model, prompt, duration_seconds, aspect_ratio,"
                " metadata, status, phase, provider, credits_charged, failover_used,"
                " status_chain, poll_failures, created_at, updated_at) VALUES ('vgen_1',"
                " 'acct_1', 'kling-v3', 'p', 5, '16:9', '{}', 'failed', 'queued', 'simulator',"
                " 3, false, '[]', 0, :now, :now)"
            ),
            {"now": now},
        )
        for delivery_id, event, status in [
            ("dlv_1", "video.generation.failed", "pending"),
            ("dlv_2", "video.generation.completed", "delivered"),
        ]:
            conn.execute(
                sa.text(
                    "INSERT INTO deliveries (id, job_id, account_id, event, url, status,"
                    " attempt_count, created_at, updated_at) VALUES (:id, 'vgen_1', 'acct_1',"
                    " :event, 'https://hooks.example/', :status, 0, :now, :now)"
                ),
                {"id": delivery_id, "event": event, "status": status, "now": now},
            )

    # When it is migrated to head
    upgrade(empty_database)

    # Then each delivery names the state it announces, and the pending one is due
    with empty_database.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                sa.text(
                    "SELECT id, job_state, next_attempt_at, round_attempts, url_hash"
                    " FROM deliveries"
                )
            )
        }
    assert rows["dlv_1"].job_state == "failed" and rows["dlv_1"].next_attempt_at is not None
    assert rows["dlv_2"].job_state == "completed" and rows["dlv_2"].next_attempt_at is None
    assert rows["dlv_1"].round_attempts == 0
    # 0007: the unique constraint holds the URL's hash, filled in for the rows already there
    url_hash = hashlib.sha256(b"https://hooks.example/").hexdigest()
    assert {r.url_hash for r in rows.values()} == {url_hash}


def test_ledger_rows_written_before_0005_keep_their_place_and_have_no_note(
    empty_database: sa.Engine,
) -> None:
    # Given a database at revision 0004 with an account's signup row
    upgrade(empty_database, "0004")
    with empty_database.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO accounts (id, email, credits, signing_secret, created_at) "
                "VALUES ('acct_1', 'a@example.com', 50, 'whsec_x', :now)"
            ),
            {"now": "2026-11-20 10:00:00+00:00"},
        )
        conn.execute(
            sa.text(
                "INSERT INTO credit_ledger (account_id, delta, reason, created_at) "
                "VALUES ('acct_1', 50, 'signup', :now)"
            ),
            {"now": "2026-11-20 10:00:00+00:00"},
        )

    # When it is migrated to head, down to 0004 and up again
    upgrade(empty_database)
    downgrade(empty_database, "0004")
    upgrade(empty_database)

    # Then the row is still there, without a note, and the ledger takes notes
    with empty_database.begin() as conn:
        rows = conn.execute(sa.text("SELECT reason, delta, note FROM credit_ledger")).all()
        conn.execute(
            sa.text(
                "INSERT INTO credit_ledger (account_id, delta, reason, note, created_at) "
                "VALUES ('acct_1', 5, 'grant', 'goodwill', :now)"
            ),
            {"now": "2026-11-21 10:00:00+00:00"},
        )
    assert [tuple(r) for r in rows] == [("signup", 50, None)]


def test_accounts_made_before_0008_count_as_verified_and_keep_working(
    empty_database: sa.Engine,
) -> None:
    # Given an account made (by open signup or an operator) before verified signup existed
    upgrade(empty_database, "0007")
    with empty_database.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO accounts (id, email, credits, signing_secret, created_at) "
                "VALUES ('acct_1', 'a@example.com', 50, 'whsec_x', :now)"
            ),
            {"now": "2026-11-20 10:00:00+00:00"},
        )

    # When it is migrated to head, down to 0007 and up again
    upgrade(empty_database)
    downgrade(empty_database, "0007")
    upgrade(empty_database)

    # Then it is verified since it was made, and the signup tables are there
    with empty_database.begin() as conn:
        made, verified = conn.execute(
            sa.text("SELECT created_at, verified_at FROM accounts WHERE id = 'acct_1'")
        ).one()
    assert verified is not None and str(verified)[:19] == str(made)[:19]
    assert {"signup_tokens", "signup_mails"} <= set(sa.inspect(empty_database).get_table_names())
