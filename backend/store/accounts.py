"""Accounts and the credit ledger (their API keys: ``api_keys.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from backend.errors import Conflict, NotFound
from backend.store.api_keys import add_key
from backend.store.ledger import LedgerReason
from backend.store.tables import accounts, credit_ledger
from backend.store.types import SealedSecret, record_from_row, sealed_or_none, utcnow

#: Largest balance an account can hold: the range of the ``credits`` column (a PostgreSQL
#: ``integer``).
MAX_CREDITS = 2**31 - 1


@dataclass(frozen=True)
class AccountRecord:
    id: str
    email: str
    credits: int
    signing_secret: SealedSecret
    previous_signing_secret: SealedSecret | None
    previous_signing_secret_expires_at: datetime | None
    created_at: datetime
    #: ``None`` while a ``verify_email`` signup waits for its link to be followed.
    verified_at: datetime | None
    #: The operator's cap on unfinished jobs; ``None``: the server's default.
    max_jobs_in_flight: int | None = None
    #: Webhooks and image fetches may reach ``private_webhook_networks`` (operators only).
    allow_private_webhooks: bool = False


def _record(row: sa.Row) -> AccountRecord:
    return record_from_row(
        AccountRecord,
        row,
        signing_secret=SealedSecret(row.signing_secret),
        previous_signing_secret=sealed_or_none(row.previous_signing_secret),
    )


def create_account(
    conn: sa.Connection,
    *,
    account_id: str,
    email: str,
    credits: int,
    signing_secret: SealedSecret,
    api_key_hash: str,
    api_key_prefix: str,
    allow_private_webhooks: bool = False,
) -> AccountRecord:
    """Insert a verified account, its first API key and the signup grant in the caller's
    transaction."""
    account = _insert_account(
        conn,
        account_id,
        email,
        signing_secret,
        credits,
        verified=True,
        allow_private_webhooks=allow_private_webhooks,
    )
    add_key(
        conn,
        account_id=account_id,
        key_hash=api_key_hash,
        key_prefix=api_key_prefix,
        now=account.created_at,
    )
    add_ledger_entry(
        conn, account_id=account_id, job_id=None, delta=credits, reason=LedgerReason.SIGNUP.value
    )
    return account


def create_unverified_account(
    conn: sa.Connection, *, account_id: str, email: str, signing_secret: SealedSecret
) -> AccountRecord:
    """Insert an account waiting for its email to be verified: no key, no credits yet.

    Raises ``Conflict`` when the email is taken, rolling back only this insert."""
    return _insert_account(conn, account_id, email, signing_secret, 0, verified=False)


def _insert_account(
    conn: sa.Connection,
    account_id: str,
    email: str,
    signing_secret: SealedSecret,
    credits: int,
    *,
    verified: bool,
    allow_private_webhooks: bool = False,
) -> AccountRecord:
    now = utcnow()
    try:
        with conn.begin_nested():
            conn.execute(
                accounts.insert().values(
                    id=account_id,
                    email=email,
                    credits=credits,
                    signing_secret=signing_secret.token,
                    created_at=now,
                    verified_at=now if verified else None,
                    allow_private_webhooks=allow_private_webhooks,
                )
            )
    except sa.exc.IntegrityError:
        raise Conflict(f"an account with email {email!r} already exists") from None
    return AccountRecord(
        account_id,
        email,
        credits,
        signing_secret,
        None,
        None,
        now,
        verified_at=now if verified else None,
        allow_private_webhooks=allow_private_webhooks,
    )


def get_account(
    conn: sa.Connection, account_id: str, *, for_update: bool = False
) -> AccountRecord | None:
    """The account; ``for_update`` locks its row until the transaction ends, which
    serialises the account's submissions (PostgreSQL; SQLite's transactions already are)."""
    query = sa.select(accounts).where(accounts.c.id == account_id)
    if for_update:
        # NO KEY UPDATE: a job insert in the same or another transaction holds KEY SHARE on
        # the account (its foreign key), which FOR UPDATE would deadlock against.
        query = query.with_for_update(key_share=True)
    row = conn.execute(query).first()
    return _record(row) if row else None


def set_max_jobs_in_flight(conn: sa.Connection, account_id: str, cap: int | None) -> None:
    conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(max_jobs_in_flight=cap)
    )


def get_account_by_email(conn: sa.Connection, email: str) -> AccountRecord | None:
    row = conn.execute(sa.select(accounts).where(accounts.c.email == email)).first()
    return _record(row) if row else None


def require_account_by_email(conn: sa.Connection, email: str) -> AccountRecord:
    """The account an operator names by email (any case, spaces trimmed); ``NotFound``."""
    account = get_account_by_email(conn, email.strip().lower())
    if account is None:
        raise NotFound(f"no account with email {email!r}")
    return account


#: Statements on every submission's path, built once and run with parameters (building
#: them anew cost more than running them).
_DEBIT = (
    accounts.update()
    .where(accounts.c.id == sa.bindparam("_id"), accounts.c.credits >= sa.bindparam("_amount"))
    .values(credits=accounts.c.credits - sa.bindparam("_amount"))
)
_INSERT_LEDGER_ENTRY = credit_ledger.insert()


@dataclass(frozen=True)
class InFlight:
    """An account's unfinished jobs and its own cap on them (``None``: the server's)."""

    jobs_in_flight: int
    max_jobs_in_flight: int | None


_IN_FLIGHT = sa.select(accounts.c.jobs_in_flight, accounts.c.max_jobs_in_flight).where(
    accounts.c.id == sa.bindparam("_id")
)


def in_flight(conn: sa.Connection, account_id: str) -> InFlight | None:
    """The account's count of jobs in flight and its cap."""
    row = conn.execute(_IN_FLIGHT, {"_id": account_id}).first()
    return InFlight(row.jobs_in_flight, row.max_jobs_in_flight) if row else None


def try_debit(conn: sa.Connection, account_id: str, amount: int) -> bool:
    """Take ``amount`` credits if the balance covers it; one conditional UPDATE, so
    concurrent debits can never push the balance below zero."""
    result = conn.execute(_DEBIT, {"_id": account_id, "_amount": amount})
    return result.rowcount == 1


def add_credits(conn: sa.Connection, account_id: str, amount: int) -> None:
    conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id)
        .values(credits=accounts.c.credits + amount)
    )


def try_adjust_credits(conn: sa.Connection, account_id: str, amount: int) -> bool:
    """Add ``amount`` (negative to take) if the balance stays within 0 and
    :data:`MAX_CREDITS`; one conditional UPDATE, like :func:`try_debit`. The sum is taken
    as a ``bigint`` so that a balance near the limit is refused, not an overflow."""
    after = sa.cast(accounts.c.credits, sa.BigInteger) + amount
    result = conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id, after >= 0, after <= MAX_CREDITS)
        .values(credits=accounts.c.credits + amount)
    )
    return result.rowcount == 1


def add_ledger_entry(
    conn: sa.Connection,
    *,
    account_id: str,
    job_id: str | None,
    delta: int,
    reason: str,
    note: str | None = None,
) -> None:
    """Record a change of the balance; call it after the UPDATE that made the change, in
    the same transaction (``backend/store/ledger.py`` relies on that order)."""
    conn.execute(
        _INSERT_LEDGER_ENTRY,
        {
            "account_id": account_id,
            "job_id": job_id,
            "delta": delta,
            "reason": reason,
            "note": note,
            "created_at": utcnow(),
        },
    )


def ledger_balance(conn: sa.Connection, account_id: str) -> int:
    """The sum of every ledger entry: must always equal ``accounts.credits``."""
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(credit_ledger.c.delta), 0)).where(
            credit_ledger.c.account_id == account_id
        )
    ).scalar_one()
    return int(total)


def rotate_signing_secret(
    conn: sa.Connection,
    account_id: str,
    *,
    new_secret: SealedSecret,
    previous_expires_at: datetime,
) -> AccountRecord | None:
    """Make ``new_secret`` current; the old one keeps signing until ``previous_expires_at``."""
    conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id)
        .values(
            previous_signing_secret=accounts.c.signing_secret,
            previous_signing_secret_expires_at=previous_expires_at,
            signing_secret=new_secret.token,
        )
    )
    return get_account(conn, account_id)


def set_allow_private_webhooks(conn: sa.Connection, account_id: str, allowed: bool) -> None:
    conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(allow_private_webhooks=allowed)
    )
