"""What the books say about an account and a job: the balance (checked against the sum of
the ledger), the job's ledger rows, and its provider tasks."""

from __future__ import annotations

import sqlalchemy as sa

from backend.accounts import NewAccount
from backend.context import Context
from backend.store import accounts as accounts_store
from backend.store import provider_tasks as tasks_store
from backend.store.tables import credit_ledger


def balance(ctx: Context, account: NewAccount) -> int:
    """The account's balance, checked against the sum of its ledger."""
    with ctx.store.begin() as conn:
        found = accounts_store.get_account(conn, account.account.id)
        assert found is not None
        assert accounts_store.ledger_balance(conn, account.account.id) == found.credits
    return found.credits


def ledger(ctx: Context, job_id: str) -> list[tuple[str, int]]:
    """The job's ledger rows, oldest first, as (reason, delta)."""
    with ctx.store.begin() as conn:
        rows = conn.execute(
            sa.select(credit_ledger.c.reason, credit_ledger.c.delta)
            .where(credit_ledger.c.job_id == job_id)
            .order_by(credit_ledger.c.id)
        )
        return [(r.reason, r.delta) for r in rows]


def task_states(ctx: Context, job_id: str) -> list[tuple[str, str]]:
    """The job's provider tasks, oldest first, as (provider, state)."""
    with ctx.store.begin() as conn:
        return [(t.provider, t.state.value) for t in tasks_store.tasks_of_job(conn, job_id)]
