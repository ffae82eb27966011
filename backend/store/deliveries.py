"""Webhook deliveries (an outbox written with the event that causes them) and their attempts.

A delivery is one event for one destination. It is sent in *rounds*: the first round
follows the retry schedule; a redelivery is a round of one attempt; a recovery starts a
fresh round on the schedule. ``next_attempt_at`` says when a pending delivery is due, so
the recovery sweep can tell a lost message from a retry that is simply waiting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from backend.store.endpoints import EndpointRecord
from backend.store.tables import accounts, deliveries, delivery_attempts, webhook_endpoints
from backend.store.types import SealedSecret, record_from_row, sealed_or_none, utcnow

#: Delivery states.
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

#: How much of a receiver's answer the log keeps (and the sender reads), in bytes: enough
#: for an error message, too little to make the delivery log a way to read a service
#: (``backend/webhooks/sender.py`` keeps nothing at all of a private address's answer to
#: an account not allowed private targets).
MAX_LOGGED_BODY_CHARS = 256


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    job_id: str
    account_id: str
    endpoint_id: str | None
    event: str
    job_state: str
    url: str
    payload: str | None
    status: str
    attempt_count: int
    round_attempts: int
    round_limit: int | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class AttemptRecord:
    id: int
    delivery_id: str
    attempted_at: datetime
    response_status: int | None
    latency_ms: int
    error: str | None
    response_body: str | None
    dedup_unavailable: bool
    url: str | None


def _record(row: sa.Row) -> DeliveryRecord:
    return record_from_row(DeliveryRecord, row)


def create_delivery(
    conn: sa.Connection,
    *,
    delivery_id: str,
    job_id: str,
    account_id: str,
    endpoint_id: str | None,
    event: str,
    job_state: str,
    url: str,
    payload: str,
    next_attempt_at: datetime,
) -> DeliveryRecord | None:
    """Insert a pending delivery; ``None`` if this (job, event, state, url) already has one."""
    now = utcnow()
    try:
        with conn.begin_nested():
            conn.execute(
                deliveries.insert().values(
                    id=delivery_id,
                    job_id=job_id,
                    account_id=account_id,
                    endpoint_id=endpoint_id,
                    event=event,
                    job_state=job_state,
                    url=url,
                    url_hash=hashlib.sha256(url.encode()).hexdigest(),
                    payload=payload,
                    status=PENDING,
                    attempt_count=0,
                    round_attempts=0,
                    next_attempt_at=next_attempt_at,
                    created_at=now,
                    updated_at=now,
                )
            )
    except sa.exc.IntegrityError:
        return None
    return get_delivery(conn, delivery_id)


def get_delivery(conn: sa.Connection, delivery_id: str) -> DeliveryRecord | None:
    row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
    return _record(row) if row else None


@dataclass(frozen=True)
class SendingRow:
    """A delivery with what its attempt needs of its account and endpoint (one query)."""

    delivery: DeliveryRecord
    endpoint: EndpointRecord | None
    signing_secret: SealedSecret
    previous_signing_secret: SealedSecret | None
    previous_signing_secret_expires_at: datetime | None
    allow_private_webhooks: bool


_ENDPOINT_PREFIX = "endpoint__"
#: Built once: SQLAlchemy then reuses its compiled form without rebuilding a cache key.
_LOAD_FOR_SENDING = (
    sa.select(
        deliveries,
        accounts.c.signing_secret,
        accounts.c.previous_signing_secret,
        accounts.c.previous_signing_secret_expires_at,
        accounts.c.allow_private_webhooks,
        *(column.label(_ENDPOINT_PREFIX + column.name) for column in webhook_endpoints.c),
    )
    .select_from(
        deliveries.join(accounts, accounts.c.id == deliveries.c.account_id).outerjoin(
            webhook_endpoints, webhook_endpoints.c.id == deliveries.c.endpoint_id
        )
    )
    .where(deliveries.c.id == sa.bindparam("delivery_id"))
)


def load_for_sending(conn: sa.Connection, delivery_id: str) -> SendingRow | None:
    """The delivery, its account's signing secrets and reach, and its endpoint (deleted
    ones included), in one statement."""
    row = conn.execute(_LOAD_FOR_SENDING, {"delivery_id": delivery_id}).first()
    if row is None:
        return None
    mapping = row._mapping
    endpoint = None
    if mapping[_ENDPOINT_PREFIX + "id"] is not None:
        values = {
            name: mapping[_ENDPOINT_PREFIX + name] for name in EndpointRecord.__dataclass_fields__
        }
        values["secret"] = SealedSecret(values["secret"])
        values["previous_secret"] = sealed_or_none(values["previous_secret"])
        endpoint = EndpointRecord(**values)
    return SendingRow(
        delivery=_record(row),
        endpoint=endpoint,
        signing_secret=SealedSecret(row.signing_secret),
        previous_signing_secret=sealed_or_none(row.previous_signing_secret),
        previous_signing_secret_expires_at=row.previous_signing_secret_expires_at,
        allow_private_webhooks=bool(row.allow_private_webhooks),
    )


def get_account_delivery(
    conn: sa.Connection, account_id: str, delivery_id: str
) -> DeliveryRecord | None:
    delivery = get_delivery(conn, delivery_id)
    return delivery if delivery is not None and delivery.account_id == account_id else None


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
    url: str | None,
    dedup_unavailable: bool = False,
    outcome: str,
    next_attempt_at: datetime | None = None,
    counts_in_round: bool = True,
) -> None:
    """Log one attempt and move the delivery to ``outcome`` (pending means "retry at
    ``next_attempt_at``"). An attempt that does not count in the round (a probe) leaves the
    delivery's place in its retry schedule as it was."""
    now = utcnow()
    conn.execute(
        _INSERT_ATTEMPT,
        {
            "delivery_id": delivery_id,
            "attempted_at": attempted_at,
            "response_status": response_status,
            "latency_ms": latency_ms,
            "error": error,
            "response_body": (response_body or "")[:MAX_LOGGED_BODY_CHARS] or None,
            "dedup_unavailable": dedup_unavailable,
            "url": url,
        },
    )
    conn.execute(
        _MOVE_AFTER_ATTEMPT,
        {
            "delivery": delivery_id,
            "outcome": outcome,
            "in_round": 1 if counts_in_round else 0,
            "next_at": next_attempt_at if outcome == PENDING else None,
            "now": now,
            "delivered": now if outcome == DELIVERED else None,
        },
    )


#: The two statements of every attempt, built once (see ``_LOAD_FOR_SENDING``).
_INSERT_ATTEMPT = delivery_attempts.insert()
_MOVE_AFTER_ATTEMPT = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("delivery"))
    .values(
        status=sa.bindparam("outcome", type_=deliveries.c.status.type),
        attempt_count=deliveries.c.attempt_count + 1,
        round_attempts=deliveries.c.round_attempts
        + sa.bindparam("in_round", type_=deliveries.c.round_attempts.type),
        next_attempt_at=sa.bindparam("next_at", type_=deliveries.c.next_attempt_at.type),
        updated_at=sa.bindparam("now", type_=deliveries.c.updated_at.type),
        delivered_at=sa.bindparam("delivered", type_=deliveries.c.delivered_at.type),
    )
)


def start_round(
    conn: sa.Connection, delivery_id: str, *, at: datetime, round_limit: int | None
) -> None:
    """Make the delivery pending again, due at ``at``, for at most ``round_limit`` attempts
    (``None``: the retry schedule's length)."""
    conn.execute(
        deliveries.update()
        .where(deliveries.c.id == delivery_id)
        .values(
            status=PENDING,
            round_attempts=0,
            round_limit=round_limit,
            next_attempt_at=at,
            updated_at=at,
        )
    )


def attempts_for(conn: sa.Connection, delivery_ids: list[str]) -> dict[str, list[AttemptRecord]]:
    """The attempts of each delivery in ``delivery_ids``, oldest first."""
    found: dict[str, list[AttemptRecord]] = {delivery_id: [] for delivery_id in delivery_ids}
    if not delivery_ids:
        return found
    rows = conn.execute(
        sa.select(delivery_attempts)
        .where(delivery_attempts.c.delivery_id.in_(delivery_ids))
        .order_by(delivery_attempts.c.id)
    )
    for row in rows:
        found[row.delivery_id].append(record_from_row(AttemptRecord, row))
    return found


def failed_for_endpoint(
    conn: sa.Connection, endpoint_id: str, since: datetime, limit: int
) -> list[str]:
    """Failed deliveries to ``endpoint_id`` created at or after ``since``, oldest first."""
    rows = conn.execute(
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.endpoint_id == endpoint_id,
            deliveries.c.status == FAILED,
            deliveries.c.created_at >= since,
        )
        .order_by(deliveries.c.created_at, deliveries.c.id)
        .limit(limit)
    )
    return [r.id for r in rows]


def stalled_deliveries(conn: sa.Connection, due_before: datetime, limit: int = 500) -> list[str]:
    """Pending deliveries that were due before ``due_before``: their message was lost."""
    rows = conn.execute(
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.status == PENDING,
            sa.or_(
                deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at < due_before
            ),
        )
        .limit(limit)
    )
    return [r.id for r in rows]


def reschedule(conn: sa.Connection, delivery_id: str, at: datetime) -> None:
    """Make a lost delivery due at ``at``, so sweeps leave it alone for a stall period."""
    conn.execute(
        deliveries.update().where(deliveries.c.id == delivery_id).values(next_attempt_at=at)
    )


def waiting_for_destination(
    conn: sa.Connection,
    *,
    endpoint_id: str | None,
    account_id: str,
    url: str,
    later_than: datetime,
    limit: int,
) -> list[tuple[str, datetime]]:
    """Pending deliveries to one destination (an endpoint, or a job's own URL of the
    account) whose next attempt is after ``later_than``: (id, next_attempt_at), soonest first."""
    where = [deliveries.c.status == PENDING, deliveries.c.next_attempt_at > later_than]
    if endpoint_id is not None:
        where.append(deliveries.c.endpoint_id == endpoint_id)
    else:
        where += [
            deliveries.c.endpoint_id.is_(None),
            deliveries.c.account_id == account_id,
            deliveries.c.url == url,
        ]
    rows = conn.execute(
        sa.select(deliveries.c.id, deliveries.c.next_attempt_at)
        .where(*where)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
    )
    return [(r.id, r.next_attempt_at) for r in rows]


def waiting_destinations(
    conn: sa.Connection, later_than: datetime, limit: int = 200
) -> list[tuple[str | None, str, str]]:
    """Destinations (endpoint id, account id, URL) whose every pending delivery waits for a
    slot after ``later_than``: each is down, or was, and nothing will try it before then."""
    rows = conn.execute(
        sa.select(deliveries.c.endpoint_id, deliveries.c.account_id, deliveries.c.url)
        .where(deliveries.c.status == PENDING)
        .group_by(deliveries.c.endpoint_id, deliveries.c.account_id, deliveries.c.url)
        .having(sa.func.min(deliveries.c.next_attempt_at) > later_than)
        .order_by(sa.func.min(deliveries.c.next_attempt_at))
        .limit(limit)
    )
    return [(r.endpoint_id, r.account_id, r.url) for r in rows]


def move_next_attempt(conn: sa.Connection, delivery_id: str, was: datetime, at: datetime) -> bool:
    """Compare-and-set: the pending delivery's next attempt from ``was`` to ``at``."""
    result = conn.execute(
        deliveries.update()
        .where(
            deliveries.c.id == delivery_id,
            deliveries.c.status == PENDING,
            deliveries.c.next_attempt_at == was,
        )
        .values(next_attempt_at=at)
    )
    return result.rowcount == 1


def account_deliveries_to_recover(
    conn: sa.Connection, account_id: str, status: str, since: datetime, limit: int
) -> list[str]:
    """The account's deliveries in ``status`` created at or after ``since``, oldest first,
    to jobs' own URLs or to endpoints that can receive (not disabled, not deleted)."""
    usable = sa.select(webhook_endpoints.c.id).where(
        webhook_endpoints.c.account_id == account_id,
        webhook_endpoints.c.enabled.is_(True),
        webhook_endpoints.c.deleted_at.is_(None),
    )
    rows = conn.execute(
        sa.select(deliveries.c.id)
        .where(
            deliveries.c.account_id == account_id,
            deliveries.c.status == status,
            deliveries.c.created_at >= since,
            sa.or_(deliveries.c.endpoint_id.is_(None), deliveries.c.endpoint_id.in_(usable)),
        )
        .order_by(deliveries.c.created_at, deliveries.c.id)
        .limit(limit)
    )
    return [r.id for r in rows]
