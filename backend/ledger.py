"""The credit ledger for the people it concerns: clients page through their own entries,
operators grant (or take back) credits with a note saying why.

Every change of a balance is a ledger row written in the same transaction as the change,
so an account's balance always equals the sum of its ledger (the tests check it after
every scenario).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from backend.context import Context
from backend.errors import InsufficientCredits, ValidationFailed
from backend.schemas.ledger import ENTRY_ID_PREFIX, LedgerEntry, LedgerList, LedgerListQuery
from backend.store import accounts as accounts_store
from backend.store import ledger as ledger_store
from backend.store.accounts import MAX_CREDITS, AccountRecord
from backend.store.ledger import LedgerEntryRecord, LedgerReason

#: Longest operator note a grant keeps.
MAX_NOTE_CHARS = 500


def ledger_page(ctx: Context, account_id: str, query: LedgerListQuery) -> LedgerList:
    """A page of the account's entries, newest first; a cursor this API did not hand out
    is a ``ValidationFailed`` naming ``cursor``."""
    try:
        before_id = ledger_store.decode_cursor(query.cursor) if query.cursor else None
    except ValueError as exc:
        raise ValidationFailed.for_field("cursor", str(exc)) from None
    with ctx.store.snapshot() as conn:
        rows = ledger_store.list_entries(
            conn, account_id, limit=query.limit + 1, before_id=before_id
        )
        page, has_more = rows[: query.limit], len(rows) > query.limit
        balance = ledger_store.balance_through(conn, account_id, page[0].id) if page else 0
    entries = []
    for row in page:  # newest first: each older entry's balance is this one's, undone
        entries.append(_entry(row, balance))
        balance -= row.delta
    return LedgerList(
        data=entries,
        has_more=has_more,
        next_cursor=ledger_store.encode_cursor(page[-1]) if has_more else None,
    )


def _entry(row: LedgerEntryRecord, balance_after: int) -> LedgerEntry:
    reason, route_index = ledger_store.parse_reason(row.reason)
    return LedgerEntry(
        id=f"{ENTRY_ID_PREFIX}{row.id}",
        created_at=row.created_at,
        delta=row.delta,
        reason=reason,
        route_index=route_index,
        job_id=row.job_id,
        note=row.note,
        balance_after=balance_after,
    )


def _out_of_range(
    conn: sa.Connection, account: AccountRecord, credits: int
) -> InsufficientCredits | ValidationFailed:
    current = accounts_store.get_account(conn, account.id)
    balance = (current or account).credits
    if credits < 0:
        return InsufficientCredits(
            f"{account.email} has {balance} credits: taking {-credits} would leave the "
            "balance below zero; nothing was changed"
        )
    return ValidationFailed.for_field(
        "credits", f"would take the balance of {balance} above {MAX_CREDITS}"
    )


@dataclass(frozen=True)
class Grant:
    """What ``genhook accounts grant`` did: the account and its balance afterwards."""

    account: AccountRecord
    credits: int
    balance: int


def grant_credits(ctx: Context, email: str, credits: int, note: str) -> Grant:
    """Add ``credits`` (negative to take some back) to the account of ``email`` with a
    ``grant`` ledger row carrying ``note``, in one transaction.

    Raises ``ValidationFailed`` for a zero amount or an empty or overlong note,
    ``NotFound`` for an unknown email, ``InsufficientCredits`` when the balance would drop
    below zero (``ValidationFailed`` above :data:`MAX_CREDITS`); then nothing is written."""
    note = note.strip()
    if credits == 0 or abs(credits) > MAX_CREDITS:
        raise ValidationFailed.for_field(
            "credits", f"must be between -{MAX_CREDITS} and {MAX_CREDITS}, and not zero"
        )
    if not note:
        raise ValidationFailed.for_field("reason", "must not be empty")
    if len(note) > MAX_NOTE_CHARS or "\x00" in note:
        raise ValidationFailed.for_field(
            "reason", f"must be at most {MAX_NOTE_CHARS} characters, without NUL"
        )
    with ctx.store.begin() as conn:
        account = accounts_store.require_account_by_email(conn, email)
        if not accounts_store.try_adjust_credits(conn, account.id, credits):
            raise _out_of_range(conn, account, credits)
        accounts_store.add_ledger_entry(
            conn,
            account_id=account.id,
            job_id=None,
            delta=credits,
            reason=LedgerReason.GRANT.value,
            note=note,
        )
        after = accounts_store.get_account(conn, account.id)
    assert after is not None
    return Grant(account=after, credits=credits, balance=after.credits)
