"""Versioned schema migrations (Alembic), runnable from the CLI or at start-up.

The scripts ship inside the package, so ``genhook migrate`` works from any directory.
"""

from __future__ import annotations

from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory


def _config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("backend.store") / "migrations"))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is already there."""
    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Take the schema back down to ``revision`` (rolling back a release); the tests check
    that each migration can be undone."""
    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    with sa.create_engine("sqlite://").connect() as connection:
        return ScriptDirectory.from_config(_config(connection)).get_current_head()
