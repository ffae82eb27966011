"""verified signups: accounts.verified_at, one-time verification tokens (hashed) and the
outbox of signup mails

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 01:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

import backend.store.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UTC = backend.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verified_at", UTC, nullable=True))
    # Every account made before this revision was made verified (open signup or an operator).
    op.execute("UPDATE accounts SET verified_at = created_at")
    op.create_table(
        "signup_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("used_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_signup_tokens_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_signup_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_signup_tokens_token_hash"),
    )
    op.create_index("ix_signup_tokens_account", "signup_tokens", ["account_id"])
    op.create_table(
        "signup_mails",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("sent_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_signup_mails_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_signup_mails"),
    )
    op.create_index(
        "ix_signup_mails_status_next_attempt", "signup_mails", ["status", "next_attempt_at"]
    )
    op.create_index("ix_signup_mails_account_created", "signup_mails", ["account_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_signup_mails_account_created", table_name="signup_mails")
    op.drop_index("ix_signup_mails_status_next_attempt", table_name="signup_mails")
    op.drop_table("signup_mails")
    op.drop_index("ix_signup_tokens_account", table_name="signup_tokens")
    op.drop_table("signup_tokens")
    # Not a batch (which copies the table, refused while other tables point at it):
    # SQLite has dropped plain columns in place since 3.35.
    op.drop_column("accounts", "verified_at")
