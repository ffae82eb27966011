"""routing plans, failover billing, kept outputs, cancellation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 16:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

import backend.store.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC = backend.store.types.UTCDateTime(timezone=True)

_JOB_COLUMNS: tuple[sa.Column[object], ...] = (
    sa.Column("route_plan", sa.JSON(), nullable=True),
    sa.Column("deadline_at", UTC, nullable=True),
    sa.Column("route_index", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("rendered_model", sa.String(length=64), nullable=True),
    sa.Column("credits_billed", sa.Integer(), nullable=True),
    sa.Column("provider_output_url", sa.Text(), nullable=True),
    sa.Column("output_key", sa.Text(), nullable=True),
    sa.Column("output_link_key", sa.String(length=64), nullable=True),
    sa.Column("output_content_type", sa.String(length=64), nullable=True),
    sa.Column("output_size_bytes", sa.BigInteger(), nullable=True),
    sa.Column("output_stored_at", UTC, nullable=True),
    sa.Column("output_deleted_at", UTC, nullable=True),
)


def upgrade() -> None:
    for column in _JOB_COLUMNS:
        op.add_column("jobs", column)
    op.add_column("provider_tasks", sa.Column("route_index", sa.Integer(), nullable=True))
    op.create_index("ix_jobs_output_stored", "jobs", ["output_stored_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_output_stored", table_name="jobs")
    op.drop_column("provider_tasks", "route_index")
    for column in reversed(_JOB_COLUMNS):
        op.drop_column("jobs", column.name)
