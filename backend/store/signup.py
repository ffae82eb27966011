"""Verified signup's rows: accounts waiting for their email to be verified, the one-time
tokens of verification links (hashed) and the outbox of signup mails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from backend.store.tables import accounts, signup_mails, signup_tokens
from backend.store.types import record_from_row


class MailKind(StrEnum):
    VERIFY = "verify"  # the link that verifies the address and reveals the credentials
    ALREADY_REGISTERED = "already_registered"  # someone signed up with a verified address


class MailStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # every attempt of the schedule failed (logged as an error)


@dataclass(frozen=True)
class MailRecord:
    id: str
    account_id: str
    kind: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class TokenRecord:
    id: int
    account_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


def add_mail(
    conn: sa.Connection, *, mail_id: str, account_id: str, kind: MailKind, now: datetime
) -> None:
    conn.execute(
        signup_mails.insert().values(
            id=mail_id,
            account_id=account_id,
            kind=kind.value,
            status=MailStatus.PENDING.value,
            attempt_count=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )


def last_mail_at(conn: sa.Connection, account_id: str, kind: MailKind) -> datetime | None:
    """When the newest signup mail of that kind to the account was queued."""
    value: datetime | None = conn.execute(
        sa.select(signup_mails.c.created_at)
        .where(signup_mails.c.account_id == account_id, signup_mails.c.kind == kind.value)
        .order_by(signup_mails.c.created_at.desc())
        .limit(1)
    ).scalar()
    return value


def get_mail(conn: sa.Connection, mail_id: str) -> MailRecord | None:
    row = conn.execute(sa.select(signup_mails).where(signup_mails.c.id == mail_id)).first()
    return record_from_row(MailRecord, row) if row else None


def record_attempt(
    conn: sa.Connection,
    mail_id: str,
    *,
    now: datetime,
    status: MailStatus,
    error: str | None = None,
    next_attempt_at: datetime | None = None,
) -> None:
    """One attempt made: sent, failed for good, or to be tried again at ``next_attempt_at``."""
    conn.execute(
        signup_mails.update()
        .where(signup_mails.c.id == mail_id, signup_mails.c.status == MailStatus.PENDING.value)
        .values(
            status=status.value,
            attempt_count=signup_mails.c.attempt_count + 1,
            last_error=error,
            next_attempt_at=next_attempt_at,
            sent_at=now if status is MailStatus.SENT else None,
            updated_at=now,
        )
    )


def stalled_mails(conn: sa.Connection, cutoff: datetime, limit: int = 100) -> list[str]:
    """Pending mails whose attempt was due before ``cutoff``: their message was lost."""
    rows = conn.execute(
        sa.select(signup_mails.c.id)
        .where(
            signup_mails.c.status == MailStatus.PENDING.value,
            signup_mails.c.next_attempt_at < cutoff,
        )
        .order_by(signup_mails.c.next_attempt_at)
        .limit(limit)
    )
    return [row.id for row in rows]


def reschedule(conn: sa.Connection, mail_id: str, now: datetime) -> None:
    """Touch a stalled mail so the next recovery pass waits a full grace before taking it."""
    conn.execute(
        signup_mails.update()
        .where(signup_mails.c.id == mail_id, signup_mails.c.status == MailStatus.PENDING.value)
        .values(next_attempt_at=now, updated_at=now)
    )


def add_token(
    conn: sa.Connection, *, account_id: str, token_hash: str, now: datetime, expires_at: datetime
) -> int:
    result = conn.execute(
        signup_tokens.insert().values(
            account_id=account_id, token_hash=token_hash, created_at=now, expires_at=expires_at
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def drop_token(conn: sa.Connection, token_id: int) -> None:
    """Forget a token whose mail could not be sent: nobody can have it."""
    conn.execute(signup_tokens.delete().where(signup_tokens.c.id == token_id))


def find_token(conn: sa.Connection, token_hash: str) -> TokenRecord | None:
    row = conn.execute(
        sa.select(signup_tokens).where(signup_tokens.c.token_hash == token_hash)
    ).first()
    return record_from_row(TokenRecord, row) if row else None


def use_token(conn: sa.Connection, token_id: int, now: datetime) -> bool:
    """Mark the token used if it is unused and unexpired: one conditional UPDATE, so of
    concurrent requests with one link exactly one gets ``True``."""
    result = conn.execute(
        signup_tokens.update()
        .where(
            signup_tokens.c.id == token_id,
            signup_tokens.c.used_at.is_(None),
            signup_tokens.c.expires_at > now,
        )
        .values(used_at=now)
    )
    return result.rowcount == 1


def retire_tokens(conn: sa.Connection, account_id: str, now: datetime) -> None:
    """Every other link of a verified account stops working."""
    conn.execute(
        signup_tokens.update()
        .where(signup_tokens.c.account_id == account_id, signup_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )


def mark_verified(conn: sa.Connection, account_id: str, credits: int, now: datetime) -> bool:
    """Verify the account and add its free credits, if it was not verified yet: the
    condition makes the grant happen exactly once, whichever link is followed."""
    result = conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id, accounts.c.verified_at.is_(None))
        .values(verified_at=now, credits=accounts.c.credits + credits)
    )
    return result.rowcount == 1
