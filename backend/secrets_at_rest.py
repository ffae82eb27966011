"""The operator's side of sealed signing secrets (``backend/secret_box.py``).

- Before a process starts: a key is configured, no stored secret is in plain text, and
  every stored secret was sealed with a key it holds. A wrong or missing key is refused at
  start with the key ids involved, never discovered by the first delivery.
- Once, when an older database is brought up to date (``genhook migrate``, ``genhook up``):
  secrets stored in plain text by earlier versions are sealed.
- On key rotation (``genhook secrets rotate``): every secret is sealed again under the
  first key, after which the older keys can be removed.

Replaced values leave no copy in a SQLite file (freed space is zeroed, the write-ahead log
emptied); PostgreSQL keeps dead row versions until ``VACUUM FULL`` (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from backend.errors import SecretKeyError
from backend.secret_box import SecretBox
from backend.store import Store
from backend.store import secrets as secrets_store
from backend.store.types import SealedSecret

#: Values sealed per transaction.
BATCH_ROWS = 500


@dataclass(frozen=True)
class Census:
    """How many stored secrets each key sealed; ``None`` counts those in plain text."""

    by_key: dict[str | None, int]

    @property
    def total(self) -> int:
        return sum(self.by_key.values())

    @property
    def plaintext(self) -> int:
        return self.by_key.get(None, 0)

    def unknown_keys(self, box: SecretBox) -> dict[str, int]:
        """Key ids that sealed stored secrets but are not configured, with their counts."""
        return {k: n for k, n in self.by_key.items() if k is not None and k not in box.key_ids}

    def lines(self, box: SecretBox) -> list[str]:
        """One line per key (configured or found), for ``genhook secrets status``."""
        lines = []
        for key_id in [*box.key_ids, *self.unknown_keys(box)]:
            if key_id == box.current_key_id:
                role = "current: seals new secrets"
            elif key_id in box.key_ids:
                role = "older: opens only"
            else:
                role = "NOT CONFIGURED: these cannot be opened"
            lines.append(f"key {key_id}  {self.by_key.get(key_id, 0):>8} secrets  ({role})")
        lines.append(f"plain text    {self.plaintext:>8} secrets")
        return lines


def census(store: Store) -> Census:
    with store.begin() as conn:
        return Census(secrets_store.count_by_key(conn))


def check_before_start(store: Store, box: SecretBox) -> str | None:
    """Raise ``SecretKeyError`` when this process could not seal or open the stored secrets.

    Returns a warning instead when the database cannot be asked (the API starts without
    it and answers 503s until it is back); the key is required either way."""
    found: Census | None = None
    warning: str | None = None
    try:
        found = census(store)
    except sa.exc.DBAPIError as exc:
        warning = (
            "could not check the stored signing secrets against GENHOOK_SECRET_KEY "
            f"(database: {type(exc.orig).__name__})"
        )
    if not box.configured:
        stored = f" (the database holds {found.total})" if found and found.total else ""
        raise SecretKeyError(
            "GENHOOK_SECRET_KEY is not set: it seals the webhook signing secrets stored in "
            f"the database{stored}. Set it to the key(s) they were sealed with (`genhook "
            "up` keeps its own in var/secret-key), or for a new installation make one with "
            "`genhook secrets generate-key`"
        )
    if found is None:
        return warning
    require_readable(found, box)
    return None


def require_readable(found: Census, box: SecretBox) -> None:
    """Raise ``SecretKeyError`` unless every secret ``found`` is sealed with a key ``box``
    holds (none in plain text)."""
    if found.plaintext:
        raise SecretKeyError(
            f"{found.plaintext} signing secrets are still stored in plain text: run "
            "`genhook migrate` with this GENHOOK_SECRET_KEY to seal them"
        )
    _require_known_keys(found, box)


def _require_known_keys(found: Census, box: SecretBox) -> None:
    unknown = found.unknown_keys(box)
    if unknown:
        held = ", ".join(f"{n} with key {k}" for k, n in unknown.items())
        raise SecretKeyError(
            f"GENHOOK_SECRET_KEY does not hold the key that sealed stored signing secrets "
            f"({held}); it holds {', '.join(box.key_ids)}. A wrong key? Keep the new key "
            "first and add the older ones after it"
        )


def seal_plaintext(store: Store, box: SecretBox) -> int:
    """Seal the secrets earlier versions stored in plain text; returns how many."""
    return _seal(store, box, keep_key_id=None)


def rotate(store: Store, box: SecretBox) -> int:
    """Seal every stored secret under the first key; returns how many changed.

    Refuses (``SecretKeyError``, nothing written) while a stored secret was sealed with a
    key that is not configured: it could not be opened to be sealed again."""
    if box.current_key_id is None:
        raise SecretKeyError("GENHOOK_SECRET_KEY is not set: there is no key to rotate to")
    _require_known_keys(census(store), box)
    return _seal(store, box, keep_key_id=box.current_key_id)


def _seal(store: Store, box: SecretBox, *, keep_key_id: str | None) -> int:
    """Seal with the first key every value that is in plain text or, with ``keep_key_id``,
    sealed with another key; batch by batch, so a long run never holds one big lock."""
    if not box.configured:
        raise SecretKeyError("GENHOOK_SECRET_KEY is not set: nothing can be sealed")
    changed = 0
    for column in secrets_store.SECRET_COLUMNS:
        after = ""
        while True:
            with store.begin() as conn:
                secrets_store.overwrite_freed_space(conn)
                rows = secrets_store.values_to_seal(
                    conn, column, keep_key_id=keep_key_id, after_id=after, limit=BATCH_ROWS
                )
                for row_id, stored in rows:
                    value = SealedSecret(stored)
                    plain = stored if value.key_id is None else box.open(value)
                    sealed = box.seal(plain).token
                    changed += secrets_store.replace_value(conn, column, row_id, stored, sealed)
            if len(rows) < BATCH_ROWS:
                break
            after = rows[-1][0]
    if changed:
        secrets_store.flush_sqlite_log(store)
    return changed
