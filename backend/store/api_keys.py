"""An account's API keys: several live at once, each revocable, with when it was last used.

Only a key's SHA-256 hash and its first characters (the *prefix*, to recognise it in a
list) are stored; the key itself is shown once, when it is created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from backend.store.tables import api_keys
from backend.store.types import record_from_row

#: ``last_used_at`` is rewritten at most this often per key, so that authenticating a
#: request stays a read (one write per key a minute at most).
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    account_id: str
    key_hash: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def _record(row: sa.Row) -> ApiKeyRecord:
    return record_from_row(ApiKeyRecord, row)


def add_key(
    conn: sa.Connection, *, account_id: str, key_hash: str, key_prefix: str, now: datetime
) -> ApiKeyRecord:
    key_id = conn.execute(
        api_keys.insert()
        .values(account_id=account_id, key_hash=key_hash, key_prefix=key_prefix, created_at=now)
        .returning(api_keys.c.id)
    ).scalar_one()
    return ApiKeyRecord(key_id, account_id, key_hash, key_prefix, now, None, None)


def find_live_key(conn: sa.Connection, key_hash: str) -> ApiKeyRecord | None:
    """The key with this hash, unless it was revoked."""
    row = conn.execute(
        sa.select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
    ).first()
    return _record(row) if row else None


def note_used(conn: sa.Connection, key: ApiKeyRecord, now: datetime) -> None:
    """Record a use of ``key``, unless one was recorded less than
    :data:`LAST_USED_RESOLUTION_SECONDS` ago (then nothing is written)."""
    stale = now - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS)
    if key.last_used_at is not None and key.last_used_at > stale:
        return
    conn.execute(
        api_keys.update()
        .where(
            api_keys.c.id == key.id,
            sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at <= stale),
        )
        .values(last_used_at=now)
    )


def get_account_key(conn: sa.Connection, account_id: str, key_id: int) -> ApiKeyRecord | None:
    row = conn.execute(
        sa.select(api_keys).where(api_keys.c.id == key_id, api_keys.c.account_id == account_id)
    ).first()
    return _record(row) if row else None


def list_keys(conn: sa.Connection, account_id: str) -> list[ApiKeyRecord]:
    """Every key of the account, revoked ones included, oldest first."""
    rows = conn.execute(
        sa.select(api_keys).where(api_keys.c.account_id == account_id).order_by(api_keys.c.id)
    ).all()
    return [_record(row) for row in rows]


def live_keys_locked(conn: sa.Connection, account_id: str) -> list[ApiKeyRecord]:
    """The account's live keys, their rows locked until the transaction ends (PostgreSQL;
    SQLite's write transaction locks the whole file), so two revocations cannot together
    leave the account without a key."""
    query = (
        sa.select(api_keys)
        .where(api_keys.c.account_id == account_id, api_keys.c.revoked_at.is_(None))
        .order_by(api_keys.c.id)
        .with_for_update()
    )
    return [_record(row) for row in conn.execute(query).all()]


def revoke(conn: sa.Connection, key_id: int, now: datetime) -> None:
    conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
