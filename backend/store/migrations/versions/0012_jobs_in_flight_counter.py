"""accounts.jobs_in_flight: the account's unfinished jobs, kept in the transactions that
insert a job and finish one, so a submission checks its cap with one row instead of a count
over its jobs (thousands for a busy account)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 05:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("jobs_in_flight", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE accounts SET jobs_in_flight = (SELECT count(*) FROM jobs "
        "WHERE jobs.account_id = accounts.id AND jobs.status IN ('pending', 'processing'))"
    )


def downgrade() -> None:
    op.drop_column("accounts", "jobs_in_flight")
