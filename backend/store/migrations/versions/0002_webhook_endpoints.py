"""webhook endpoints, retry rounds, frozen payloads and secret rotation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 13:46:46.424242
"""

import sqlalchemy as sa
from alembic import op

import backend.store.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_at", backend.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("secret", sa.String(length=120), nullable=False),
        sa.Column("previous_secret", sa.String(length=120), nullable=True),
        sa.Column(
            "previous_secret_expires_at",
            backend.store.types.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("retry_schedule", sa.JSON(), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=True),
        sa.Column("failing_since", backend.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", backend.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", backend.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", backend.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_webhook_endpoints_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_endpoints_account", ["account_id", "created_at"], unique=False
        )

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("previous_signing_secret", sa.String(length=120), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "previous_signing_secret_expires_at",
                backend.store.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint_id", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("job_state", sa.String(length=16), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("payload", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("round_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("round_limit", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "next_attempt_at", backend.store.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.drop_index(batch_op.f("ix_deliveries_status_updated"))
        batch_op.drop_constraint(batch_op.f("uq_deliveries_job_id_event_url"), type_="unique")
        batch_op.create_index(
            "ix_deliveries_endpoint_status", ["endpoint_id", "status", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_deliveries_status_next_attempt", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_job_id_event_job_state_url"),
            ["job_id", "event", "job_state", "url"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_deliveries_endpoint_id_webhook_endpoints"),
            "webhook_endpoints",
            ["endpoint_id"],
            ["id"],
        )

    # Deliveries written before this revision announce their event's status and are due now.
    op.execute("UPDATE deliveries SET job_state = substr(event, 18)")
    op.execute("UPDATE deliveries SET next_attempt_at = updated_at WHERE status = 'pending'")

    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("dedup_unavailable", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("url", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_column("url")
        batch_op.drop_column("dedup_unavailable")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_deliveries_endpoint_id_webhook_endpoints"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("uq_deliveries_job_id_event_job_state_url"), type_="unique"
        )
        batch_op.drop_index("ix_deliveries_status_next_attempt")
        batch_op.drop_index("ix_deliveries_endpoint_status")
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_job_id_event_url"), ["job_id", "event", "url"]
        )
        batch_op.create_index(
            batch_op.f("ix_deliveries_status_updated"), ["status", "updated_at"], unique=False
        )
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("round_limit")
        batch_op.drop_column("round_attempts")
        batch_op.drop_column("payload")
        batch_op.drop_column("job_state")
        batch_op.drop_column("endpoint_id")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("previous_signing_secret_expires_at")
        batch_op.drop_column("previous_signing_secret")

    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_endpoints_account")

    op.drop_table("webhook_endpoints")
