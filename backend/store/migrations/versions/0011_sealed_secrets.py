"""signing secrets are stored sealed (``backend/secret_box.py``): room for the sealed form

PostgreSQL's secret columns grow from 120 to 255 characters. SQLite's stay as they are: it
does not enforce a VARCHAR's length, and widening a column there means copying its table,
which the foreign keys on ``accounts`` forbid. The values themselves are sealed by
``genhook migrate`` (and ``genhook up``) right after the migrations, since that needs the
operator's key, which migrations do not read.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 01:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = [
    ("accounts", "signing_secret", False),
    ("accounts", "previous_signing_secret", True),
    ("webhook_endpoints", "secret", False),
    ("webhook_endpoints", "previous_secret", True),
]


def upgrade() -> None:
    _resize(sa.String(length=120), sa.String(length=255))


def downgrade() -> None:
    _resize(sa.String(length=255), sa.String(length=120))


def _resize(old: sa.String, new: sa.String) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(table, column, existing_type=old, type_=new, existing_nullable=nullable)
