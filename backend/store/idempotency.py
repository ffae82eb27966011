"""Remembered answers to requests sent with an ``Idempotency-Key`` (``backend/idempotency.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from backend.store.tables import idempotency_keys


@dataclass(frozen=True)
class RememberedAnswer:
    request_hash: str
    status_code: int
    response: bytes


def find(conn: sa.Connection, scope: str, key_hash: str, now: datetime) -> RememberedAnswer | None:
    """The answer remembered for this key, unless it expired."""
    row = conn.execute(
        sa.select(
            idempotency_keys.c.request_hash,
            idempotency_keys.c.status_code,
            idempotency_keys.c.response,
        ).where(
            idempotency_keys.c.scope == scope,
            idempotency_keys.c.key_hash == key_hash,
            idempotency_keys.c.expires_at > now,
        )
    ).first()
    if row is None:
        return None
    return RememberedAnswer(row.request_hash, row.status_code, bytes(row.response))


def remember(
    conn: sa.Connection,
    *,
    scope: str,
    key_hash: str,
    request_hash: str,
    status_code: int,
    response: bytes,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Store the answer in the caller's transaction (an expired one with the key goes).

    Raises ``sqlalchemy.exc.IntegrityError`` when another request with the key committed
    first: the caller's transaction must then be rolled back, work and charge included.
    """
    conn.execute(
        idempotency_keys.delete().where(
            idempotency_keys.c.scope == scope,
            idempotency_keys.c.key_hash == key_hash,
            idempotency_keys.c.expires_at <= now,
        )
    )
    conn.execute(
        idempotency_keys.insert().values(
            scope=scope,
            key_hash=key_hash,
            request_hash=request_hash,
            status_code=status_code,
            response=response,
            created_at=now,
            expires_at=expires_at,
        )
    )


def delete_expired(conn: sa.Connection, now: datetime, limit: int = 1000) -> int:
    """Forget up to ``limit`` expired answers; returns how many."""
    ids = [
        row.id
        for row in conn.execute(
            sa.select(idempotency_keys.c.id)
            .where(idempotency_keys.c.expires_at <= now)
            .order_by(idempotency_keys.c.expires_at)
            .limit(limit)
        )
    ]
    if ids:
        conn.execute(idempotency_keys.delete().where(idempotency_keys.c.id.in_(ids)))
    return len(ids)
