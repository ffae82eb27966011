"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

Record = TypeVar("Record")

#: How every sealed signing secret begins: the format's version, then ``<key id>.``.
SEALED_PREFIX = "v1."
#: Hex digits of the key id in a sealed secret.
KEY_ID_DIGITS = 8


@dataclass(frozen=True)
class SealedSecret:
    """A signing secret as the database holds it: encrypted under one of the operator's keys
    (``backend/secret_box.py``), so it cannot sign anything until opened there."""

    token: str

    @property
    def key_id(self) -> str | None:
        """Which key sealed it; ``None`` for a value stored before sealing (plain text)."""
        if not self.token.startswith(SEALED_PREFIX):
            return None
        key_id, dot, _ = self.token[len(SEALED_PREFIX) :].partition(".")
        return key_id if dot else None

    def __repr__(self) -> str:
        return f"SealedSecret(key_id={self.key_id!r})"


def sealed_or_none(token: str | None) -> SealedSecret | None:
    return None if token is None else SealedSecret(token)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite drops the zone otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def record_from_row(cls: type[Record], row: sa.Row, **converted: Any) -> Record:
    """Build the dataclass ``cls`` from the columns of the same names in ``row``;
    ``converted`` overrides columns that need turning into richer types."""
    mapping = row._mapping
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: converted.get(name, mapping[name]) for name in names})
