"""accounts.allow_private_webhooks (private webhook targets are allowed per account, not for
everyone) and api_keys.last_used_at (shown when an account lists its keys)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 01:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

import backend.store.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (SQLite 3.35+ has both): a batch copy of ``accounts`` would
    # drop a table other tables' foreign keys point at.
    op.add_column(
        "accounts",
        sa.Column(
            "allow_private_webhooks", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )
    op.add_column(
        "api_keys",
        sa.Column("last_used_at", backend.store.types.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("api_keys", "last_used_at")
    op.drop_column("accounts", "allow_private_webhooks")
