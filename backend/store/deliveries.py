"""Webhook deliveries (an outbox written with the job's final state) and their attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from backend.store.tables import deliveries, delivery_attempts
from backend.store.types import record_from_row, utcnow

#: Delivery states.
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

#: How much of a receiver's answer the log keeps.
MAX_LOGGED_BODY_CHARS = 2048


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    job_id: str
    account_id: str
    event: str
    url: str
    status: str
    attempt_count: int
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


def _record(row: sa.Row) -> DeliveryRecord:
    return record_from_row(DeliveryRecord, row)


def create_delivery(
    conn: sa.Connection, *, delivery_id: str, job_id: str, account_id: str, event: str, url: str
) -> DeliveryRecord:
    now = utcnow()
    conn.execute(
        deliveries.insert().values(
            id=delivery_id,
            job_id=job_id,
            account_id=account_id,
            event=event,
            url=url,
            status=PENDING,
            attempt_count=0,
            created_at=now,
            updated_at=now,
        )
    )
    return get_delivery(conn, delivery_id)  # type: ignore[return-value]


def get_delivery(conn: sa.Connection, delivery_id: str) -> DeliveryRecord | None:
    row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
    return _record(row) if row else None


def deliveries_for_job(conn: sa.Connection, job_id: str) -> list[DeliveryRecord]:
    rows = conn.execute(
        sa.select(deliveries).where(deliveries.c.job_id == job_id).order_by(deliveries.c.id)
    )
    return [_record(r) for r in rows]


def record_attempt(
    conn: sa.Connection,
    delivery_id: str,
    *,
    attempted_at: datetime,
    response_status: int | None,
    latency_ms: int,
    error: str | None,
    response_body: str | None,
    outcome: str,
) -> None:
    """Log one attempt and move the delivery to ``outcome`` (pending, delivered or failed)."""
    conn.execute(
        delivery_attempts.insert().values(
            delivery_id=delivery_id,
            attempted_at=attempted_at,
            response_status=response_status,
            latency_ms=latency_ms,
            error=error,
            response_body=(response_body or "")[:MAX_LOGGED_BODY_CHARS] or None,
        )
    )
    now = utcnow()
    conn.execute(
        deliveries.update()
        .where(deliveries.c.id == delivery_id)
        .values(
            status=outcome,
            attempt_count=deliveries.c.attempt_count + 1,
            updated_at=now,
            delivered_at=now if outcome == DELIVERED else None,
        )
    )


def attempts_for(conn: sa.Connection, delivery_id: str) -> list[sa.RowMapping]:
    rows = conn.execute(
        sa.select(delivery_attempts)
        .where(delivery_attempts.c.delivery_id == delivery_id)
        .order_by(delivery_attempts.c.id)
    )
    return [r._mapping for r in rows]


def stalled_deliveries(conn: sa.Connection, older_than: datetime, limit: int = 500) -> list[str]:
    """Pending deliveries nobody attempted recently: their message was lost."""
    rows = conn.execute(
        sa.select(deliveries.c.id)
        .where(deliveries.c.status == PENDING, deliveries.c.updated_at < older_than)
        .limit(limit)
    )
    return [r.id for r in rows]


def touch(conn: sa.Connection, delivery_id: str, at: datetime) -> None:
    """Note that the delivery was (re-)enqueued, so sweeps leave it alone for a while."""
    conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(updated_at=at))
