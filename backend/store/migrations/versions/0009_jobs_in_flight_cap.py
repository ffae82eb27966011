"""an operator's per-account cap on jobs in flight (NULL: the server's default), and an
index that counts an account's unfinished jobs at each submission

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 01:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("max_jobs_in_flight", sa.Integer(), nullable=True))
    op.create_index("ix_jobs_account_status", "jobs", ["account_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_account_status", table_name="jobs")
    # A plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): batch mode would copy and drop the
    # accounts table, which every other table references.
    op.drop_column("accounts", "max_jobs_in_flight")
