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
from backend.store.ledger import LedgerReason, reprice_reason


def require_balance(conn: sa.Connection, account_id: str, amount: int) -> None:
    """Fail early, before any costly work, when the balance cannot pay ``amount``; the
    conditional debit in :func:`charge` stays the authority."""
    account = accounts_store.get_account(conn, account_id)
    if account is None or account.credits < amount:
        raise _short(amount)


def charge(conn: sa.Connection, *, account_id: str, job_id: str, amount: int) -> None:
    if not accounts_store.try_debit(conn, account_id, amount):
        raise _short(amount)
    accounts_store.add_ledger_entry(
        conn, account_id=account_id, job_id=job_id, delta=-amount, reason=LedgerReason.DEBIT.value
    )


def refund(conn: sa.Connection, job: JobRecord) -> bool:
    """Give back what the job is still billed unless that already happened; returns
    whether it did."""
    if not jobs_store.mark_refunded(conn, job.id):
        return False
    amount = billed(job)
    accounts_store.add_credits(conn, job.account_id, amount)
    accounts_store.add_ledger_entry(
        conn,
        account_id=job.account_id,
        job_id=job.id,
        delta=amount,
        reason=LedgerReason.REFUND.value,
    )
    return True


def reprice(conn: sa.Connection, job: JobRecord, route_index: int, price: int) -> int:
    """Bill the job ``price`` from now on if that is lower, refunding the difference at
    once; returns the new billed amount. A job is never billed more than it was charged.

    The ledger row's reason names the route (``reprice:2``), so the unique (job, reason)
    makes each price drop happen once, however often the move is retried."""
    current = billed(job)
    if price >= current:
        return current
    accounts_store.add_credits(conn, job.account_id, current - price)
    accounts_store.add_ledger_entry(
        conn,
        account_id=job.account_id,
        job_id=job.id,
        delta=current - price,
        reason=reprice_reason(route_index),
    )
    return price


def billed(job: JobRecord) -> int:
    """What the job costs before any refund: the charge, less failover price drops."""
    return job.credits_charged if job.credits_billed is None else job.credits_billed


def _short(amount: int) -> InsufficientCredits:
    return InsufficientCredits(f"this generation costs {amount} credits; the balance is lower")
