"""Reading the credit ledger: an account's entries a page at a time, newest first.

Entries are written by ``backend/store/accounts.py`` (``add_ledger_entry``), always after the
UPDATE of the account's balance in the same transaction. That UPDATE locks the account's
row until the commit (SQLite serialises every writer), so one account's entries get their
ids in the order their balance changes commit: the running sum of deltas in id order is
the balance after each entry.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from backend.store.tables import credit_ledger
from backend.store.types import record_from_row

#: Largest id a cursor may name: the range of a PostgreSQL ``integer`` primary key.
_MAX_ENTRY_ID = 2**31 - 1


class LedgerReason(StrEnum):
    """Why an account's balance moved."""

    SIGNUP = "signup"  # the starting credits of a new account
    DEBIT = "debit"  # a generation's price, charged when it was accepted
    REFUND = "refund"  # a failed or canceled generation's charge given back
    REPRICE = "reprice"  # a failover to a cheaper route: the difference given back
    GRANT = "grant"  # an operator's grant or correction (``genhook accounts grant``)


def reprice_reason(route_index: int) -> str:
    """The stored reason of a price drop: the route is part of it, so the unique
    (job, reason) lets each route of a job's plan reprice it at most once."""
    return f"{LedgerReason.REPRICE}:{route_index}"


def parse_reason(stored: str) -> tuple[LedgerReason, int | None]:
    """A stored reason as (reason, route index); the index only for a price drop."""
    reason, _, route = stored.partition(":")
    return LedgerReason(reason), int(route) if route else None


@dataclass(frozen=True)
class LedgerEntryRecord:
    id: int
    account_id: str
    job_id: str | None
    delta: int
    reason: str
    note: str | None
    created_at: datetime


def list_entries(
    conn: sa.Connection, account_id: str, *, limit: int, before_id: int | None = None
) -> list[LedgerEntryRecord]:
    """Newest first; ``before_id`` is the id of the last entry of the previous page."""
    query = sa.select(credit_ledger).where(credit_ledger.c.account_id == account_id)
    if before_id is not None:
        query = query.where(credit_ledger.c.id < before_id)
    query = query.order_by(credit_ledger.c.id.desc()).limit(limit)
    return [record_from_row(LedgerEntryRecord, row) for row in conn.execute(query)]


def balance_through(conn: sa.Connection, account_id: str, entry_id: int) -> int:
    """The account's balance right after entry ``entry_id``: the sum of it and every
    earlier entry of the account."""
    total = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(credit_ledger.c.delta), 0)).where(
            credit_ledger.c.account_id == account_id, credit_ledger.c.id <= entry_id
        )
    ).scalar_one()
    return int(total)


def encode_cursor(entry: LedgerEntryRecord) -> str:
    raw = json.dumps([entry.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Inverse of :func:`encode_cursor`: the id to continue below. Raises ``ValueError``
    on anything this API did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        (entry_id,) = json.loads(raw)
    except Exception as exc:  # any malformed cursor is the client's mistake
        raise ValueError("not a cursor returned by this API") from exc
    if type(entry_id) is not int or not 0 < entry_id <= _MAX_ENTRY_ID:
        raise ValueError("not a cursor returned by this API")
    return entry_id
