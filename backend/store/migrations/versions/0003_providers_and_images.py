"""provider tasks, input images, and the job columns real providers need

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 14:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

import backend.store.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = backend.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("link_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_images_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
    )
    op.create_table(
        "provider_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("provider_model", sa.String(length=128), nullable=False),
        sa.Column("task_id", sa.String(length=256), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("callback_token_hash", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("ended_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_provider_tasks_job_id_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_tasks")),
        sa.UniqueConstraint(
            "callback_token_hash", name=op.f("uq_provider_tasks_callback_token_hash")
        ),
    )
    op.create_index("ix_provider_tasks_job", "provider_tasks", ["job_id"], unique=False)
    op.create_index(
        "ix_provider_tasks_state", "provider_tasks", ["state", "updated_at"], unique=False
    )
    # Plain ADD COLUMNs (no foreign keys): SQLite cannot add a constraint in place, and
    # rebuilding ``jobs`` would break the tables that reference it.
    op.add_column("jobs", sa.Column("provider_model", sa.String(length=128), nullable=True))
    op.add_column("jobs", sa.Column("image_id", sa.String(length=40), nullable=True))
    op.add_column("jobs", sa.Column("end_image_id", sa.String(length=40), nullable=True))
    op.add_column("jobs", sa.Column("progress", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("queue_position", sa.Integer(), nullable=True))


def downgrade() -> None:
    for column in ("queue_position", "progress", "end_image_id", "image_id", "provider_model"):
        op.drop_column("jobs", column)
    op.drop_index("ix_provider_tasks_state", table_name="provider_tasks")
    op.drop_index("ix_provider_tasks_job", table_name="provider_tasks")
    op.drop_table("provider_tasks")
    op.drop_table("images")
