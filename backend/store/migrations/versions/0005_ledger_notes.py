"""the credit ledger as an API: operator grants carry a note, pages walk (account, id)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        # Why an operator granted or took credits; NULL for every other entry.
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        # Pages of one account's entries, newest first, walk this index.
        batch_op.drop_index("ix_credit_ledger_account")
        batch_op.create_index("ix_credit_ledger_account_id", ["account_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("credit_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_credit_ledger_account_id")
        batch_op.create_index("ix_credit_ledger_account", ["account_id"], unique=False)
        batch_op.drop_column("note")
