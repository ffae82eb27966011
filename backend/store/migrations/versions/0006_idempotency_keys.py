"""idempotency keys of POST /v1/video/generations and POST /v1/signup; an index for the
fast recovery pass's overdue polls

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 22:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

import backend.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC = backend.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("scope", "key_hash", name=op.f("uq_idempotency_keys_scope_key_hash")),
    )
    op.create_index(
        "ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"], unique=False
    )
    op.create_index("ix_jobs_status_next_poll", "jobs", ["status", "next_poll_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_status_next_poll", table_name="jobs")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
