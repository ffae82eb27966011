"""Migrations build exactly the schema ``backend/store/tables.py`` describes."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from backend.store.engine import create_engine
from backend.store.migrate import current_revision, head_revision, upgrade
from backend.store.tables import metadata


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
