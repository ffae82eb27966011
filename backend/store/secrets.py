"""Every stored signing secret, column by column, for the operator's key work
(``backend/secrets_at_rest.py``): counting them by the key that sealed them, and sealing
again the ones stored in plain text or under an older key."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from backend.store import Store
from backend.store.tables import accounts, webhook_endpoints
from backend.store.types import KEY_ID_DIGITS, SEALED_PREFIX


@dataclass(frozen=True)
class SecretColumn:
    table: sa.Table
    name: str

    @property
    def column(self) -> sa.ColumnElement[str]:
        return self.table.c[self.name]

    def __str__(self) -> str:
        return f"{self.table.name}.{self.name}"


#: Where signing secrets are stored: each account's (for its jobs' own ``webhook_url``) and
#: each webhook endpoint's, current and previous (still signing during a rotation's overlap).
SECRET_COLUMNS = (
    SecretColumn(accounts, "signing_secret"),
    SecretColumn(accounts, "previous_signing_secret"),
    SecretColumn(webhook_endpoints, "secret"),
    SecretColumn(webhook_endpoints, "previous_secret"),
)


def count_by_key(conn: sa.Connection) -> dict[str | None, int]:
    """How many stored secrets each key id sealed; ``None`` counts those in plain text."""
    counts: dict[str | None, int] = {}
    for secret in SECRET_COLUMNS:
        value = secret.column
        key_id = sa.case(
            (
                value.like(f"{SEALED_PREFIX}%"),
                sa.func.substr(value, len(SEALED_PREFIX) + 1, KEY_ID_DIGITS),
            ),
            else_=sa.null(),
        ).label("key_id")
        rows = conn.execute(
            sa.select(key_id, sa.func.count().label("n")).where(value.isnot(None)).group_by(key_id)
        )
        for row in rows:
            counts[row.key_id] = counts.get(row.key_id, 0) + int(row.n)
    return counts


def values_to_seal(
    conn: sa.Connection,
    secret: SecretColumn,
    *,
    keep_key_id: str | None,
    after_id: str,
    limit: int,
) -> list[tuple[str, str]]:
    """``(row id, stored value)`` of the next ``limit`` rows after ``after_id`` whose value
    is in plain text or, unless ``keep_key_id`` is ``None``, sealed with another key."""
    value = secret.column
    row_id = secret.table.c.id
    if keep_key_id is None:
        needs = value.not_like(f"{SEALED_PREFIX}%")
    else:
        needs = value.not_like(f"{SEALED_PREFIX}{keep_key_id}.%")
    rows = conn.execute(
        sa.select(row_id, value)
        .where(value.isnot(None), needs, row_id > after_id)
        .order_by(row_id)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


def replace_value(
    conn: sa.Connection, secret: SecretColumn, row_id: str, old: str, new: str
) -> bool:
    """Store ``new`` if the row still holds ``old`` (a rotation by the account in between
    wins: its value is sealed with the current key already)."""
    result = conn.execute(
        secret.table.update()
        .where(secret.table.c.id == row_id, secret.column == old)
        .values({secret.name: new})
    )
    return result.rowcount == 1


def overwrite_freed_space(conn: sa.Connection) -> None:
    """On SQLite, have this connection zero what it deletes or overwrites, so a value
    replaced in this transaction leaves no copy in the file's free space."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete = ON")


def flush_sqlite_log(store: Store) -> bool:
    """On SQLite, copy the write-ahead log into the database and empty it, so the old page
    images it holds (with values since replaced) leave the disk files. False when another
    process's open transaction kept it from finishing (it empties at a later checkpoint)."""
    if store.engine.dialect.name != "sqlite":
        return True
    raw = store.engine.raw_connection()  # outside any transaction, as a checkpoint must be
    try:
        busy, _, _ = raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        raw.close()
    return not busy
