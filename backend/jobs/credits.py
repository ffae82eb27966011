"""Charging for a job and refunding it: both inside the caller's transaction.

The balance is changed by a conditional UPDATE (never below zero), every change is
mirrored in the ledger, and the ledger's unique (job, reason) plus ``jobs.refunded_at``
make a refund happen at most once whatever retries or races occur.
"""

from __future__ import annotations

import sqlalchemy as sa

from backend.errors import InsufficientCredits
from backend.store import accounts as accounts_store
from backend.store import jobs as jobs_store
from backend.store.jobs import JobRecord


def charge(conn: sa.Connection, *, account_id: str, job_id: str, amount: int) -> None:
    if not accounts_store.try_debit(conn, account_id, amount):
        raise InsufficientCredits(f"this generation costs {amount} credits; the balance is lower")
    accounts_store.add_ledger_entry(
        conn, account_id=account_id, job_id=job_id, delta=-amount, reason="debit"
    )


def refund(conn: sa.Connection, job: JobRecord) -> bool:
    """Give the job's credits back unless that already happened; returns whether it did."""
    if not jobs_store.mark_refunded(conn, job.id):
        return False
    accounts_store.add_credits(conn, job.account_id, job.credits_charged)
    accounts_store.add_ledger_entry(
        conn, account_id=job.account_id, job_id=job.id, delta=job.credits_charged, reason="refund"
    )
    return True
