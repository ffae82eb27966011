"""deliveries are unique per (job, event, state, SHA-256 of the URL), not the URL itself: a
long non-ASCII URL no longer exceeds PostgreSQL's B-tree row limit

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 23:50:00.000000
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("url_hash", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, url FROM deliveries")).all()
    for row in rows:
        conn.execute(
            sa.text("UPDATE deliveries SET url_hash = :hash WHERE id = :id"),
            {"hash": hashlib.sha256(row.url.encode()).hexdigest(), "id": row.id},
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("url_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint("uq_deliveries_job_id_event_job_state_url", type_="unique")
        batch_op.create_unique_constraint(
            "uq_deliveries_job_id_event_job_state_url_hash",
            ["job_id", "event", "job_state", "url_hash"],
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deliveries_job_id_event_job_state_url_hash", type_="unique")
        batch_op.create_unique_constraint(
            "uq_deliveries_job_id_event_job_state_url", ["job_id", "event", "job_state", "url"]
        )
        batch_op.drop_column("url_hash")
