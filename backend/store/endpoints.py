"""Webhook endpoints: an account's standing subscriptions to generation events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from backend.store.tables import accounts, webhook_endpoints
from backend.store.types import SealedSecret, record_from_row, sealed_or_none, utcnow


@dataclass(frozen=True)
class EndpointRecord:
    id: str
    account_id: str
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    secret: SealedSecret
    previous_secret: SealedSecret | None
    previous_secret_expires_at: datetime | None
    retry_schedule: list[float] | None
    timeout_seconds: float | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    @property
    def unusable_reason(self) -> str | None:
        """Why nothing may be sent to this endpoint now, or ``None`` if it can receive."""
        if self.deleted_at is not None:
            return "the endpoint was deleted"
        if not self.enabled:
            return f"the endpoint is disabled ({self.disabled_reason})"
        return None


def _record(row: sa.Row) -> EndpointRecord:
    return record_from_row(
        EndpointRecord,
        row,
        secret=SealedSecret(row.secret),
        previous_secret=sealed_or_none(row.previous_secret),
    )


def create_endpoint(
    conn: sa.Connection,
    *,
    endpoint_id: str,
    account_id: str,
    url: str,
    description: str,
    events: list[str],
    enabled: bool,
    secret: SealedSecret,
    retry_schedule: list[float] | None,
    timeout_seconds: float | None,
) -> EndpointRecord:
    now = utcnow()
    conn.execute(
        webhook_endpoints.insert().values(
            id=endpoint_id,
            account_id=account_id,
            url=url,
            description=description,
            events=events,
            enabled=enabled,
            secret=secret.token,
            retry_schedule=retry_schedule,
            timeout_seconds=timeout_seconds,
            created_at=now,
            updated_at=now,
        )
    )
    return get_endpoint(conn, endpoint_id)  # type: ignore[return-value]


def get_endpoint(
    conn: sa.Connection, endpoint_id: str, *, include_deleted: bool = False
) -> EndpointRecord | None:
    query = sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    if not include_deleted:
        query = query.where(webhook_endpoints.c.deleted_at.is_(None))
    row = conn.execute(query).first()
    return _record(row) if row else None


def get_account_endpoint(
    conn: sa.Connection, account_id: str, endpoint_id: str
) -> EndpointRecord | None:
    """The live endpoint ``endpoint_id`` if ``account_id`` owns it."""
    endpoint = get_endpoint(conn, endpoint_id)
    return endpoint if endpoint is not None and endpoint.account_id == account_id else None


def list_endpoints(conn: sa.Connection, account_id: str) -> list[EndpointRecord]:
    rows = conn.execute(
        sa.select(webhook_endpoints)
        .where(
            webhook_endpoints.c.account_id == account_id,
            webhook_endpoints.c.deleted_at.is_(None),
        )
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id)
    )
    return [_record(r) for r in rows]


def count_live_endpoints_locked(conn: sa.Connection, account_id: str) -> int:
    """How many endpoints the account has, with its row locked until the transaction ends
    (PostgreSQL), so two concurrent creations cannot both pass a limit."""
    conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(webhook_endpoints)
            .where(
                webhook_endpoints.c.account_id == account_id,
                webhook_endpoints.c.deleted_at.is_(None),
            )
        ).scalar_one()
    )


def subscribed_endpoints(conn: sa.Connection, account_id: str, event: str) -> list[EndpointRecord]:
    """The account's enabled endpoints that asked for ``event``."""
    rows = conn.execute(
        sa.select(webhook_endpoints).where(
            webhook_endpoints.c.account_id == account_id,
            webhook_endpoints.c.enabled.is_(True),
            webhook_endpoints.c.deleted_at.is_(None),
        )
    )
    return [e for e in map(_record, rows) if event in e.events]


def update_endpoint(conn: sa.Connection, endpoint_id: str, **changes: Any) -> None:
    conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(updated_at=utcnow(), **changes)
    )


def rotate_secret(
    conn: sa.Connection,
    endpoint_id: str,
    *,
    new_secret: SealedSecret,
    previous_expires_at: datetime,
) -> None:
    """Make ``new_secret`` current; the old one keeps signing until ``previous_expires_at``."""
    update_endpoint(
        conn,
        endpoint_id,
        previous_secret=webhook_endpoints.c.secret,
        previous_secret_expires_at=previous_expires_at,
        secret=new_secret.token,
    )


def note_failure(conn: sa.Connection, endpoint_id: str, at: datetime) -> EndpointRecord | None:
    """Start (or continue) the endpoint's run of failures; returns the endpoint."""
    conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.failing_since.is_(None))
        .values(failing_since=at)
    )
    return get_endpoint(conn, endpoint_id, include_deleted=True)


def note_success(conn: sa.Connection, endpoint_id: str) -> None:
    conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.failing_since.isnot(None))
        .values(failing_since=None)
    )


def disable(conn: sa.Connection, endpoint_id: str, reason: str, at: datetime) -> None:
    conn.execute(
        webhook_endpoints.update()
        .where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason, disabled_at=at, updated_at=at)
    )
