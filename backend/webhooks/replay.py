"""The delivery log, and sending again on request: redeliver one, recover many.

Both reuse the delivery row, so the ``webhook-id`` a receiver sees is the one it saw
before and it can tell a replay from a new event.
"""

from __future__ import annotations

from datetime import datetime

from backend.context import Context
from backend.errors import Conflict, NotFound
from backend.schemas.webhooks import Delivery, DeliveryAttempt
from backend.store import deliveries as deliveries_store
from backend.store import endpoints as endpoints_store
from backend.store import jobs as jobs_store
from backend.store.deliveries import AttemptRecord, DeliveryRecord
from backend.store.endpoints import EndpointRecord

#: Most deliveries one recover call queues; call again with a later ``since`` for more.
MAX_RECOVER = 1000


def deliveries_of_generation(ctx: Context, account_id: str, job_id: str) -> list[Delivery]:
    # One snapshot: a delivery and its attempts must tell the same moment's story.
    with ctx.store.snapshot() as conn:
        if jobs_store.get_account_job(conn, account_id, job_id) is None:
            raise NotFound(f"no generation {job_id!r} in this account")
        records = deliveries_store.deliveries_for_job(conn, job_id)
        attempts = deliveries_store.attempts_for(conn, [d.id for d in records])
    return [to_delivery(d, attempts[d.id]) for d in records]


def get_delivery(ctx: Context, account_id: str, delivery_id: str) -> Delivery:
    with ctx.store.snapshot() as conn:
        delivery = deliveries_store.get_account_delivery(conn, account_id, delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id!r} in this account")
        attempts = deliveries_store.attempts_for(conn, [delivery.id])[delivery.id]
    return to_delivery(delivery, attempts)


def redeliver(ctx: Context, account_id: str, delivery_id: str) -> Delivery:
    """One more attempt now. A delivery still being retried has its next attempt brought
    forward instead; either way the receiver sees the same ``webhook-id``.

    Counts against the account's redeliver quota, and is refused while its webhook
    delivery quota is used up (``QuotaExceeded``)."""
    ctx.rate_limits.require_redeliver(account_id)
    now = ctx.now()
    with ctx.store.begin() as conn:
        delivery = deliveries_store.get_account_delivery(conn, account_id, delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id!r} in this account")
        if delivery.endpoint_id is not None:
            endpoint = endpoints_store.get_endpoint(
                conn, delivery.endpoint_id, include_deleted=True
            )
            assert endpoint is not None
            _require_usable(endpoint)
        if delivery.status == deliveries_store.PENDING:
            deliveries_store.reschedule(conn, delivery.id, now)
        else:
            deliveries_store.start_round(conn, delivery.id, at=now, round_limit=1)
        updated = deliveries_store.get_delivery(conn, delivery.id)
        attempts = deliveries_store.attempts_for(conn, [delivery.id])[delivery.id]
    assert updated is not None
    ctx.queue.deliver_webhook(delivery.id)
    return to_delivery(updated, attempts)


def recover(ctx: Context, account_id: str, endpoint_id: str, since: datetime) -> list[str]:
    """Queue every failed delivery to the endpoint since ``since`` for a fresh round on its
    retry schedule; returns their ids, oldest first. Counts against the account's recover
    quota (``QuotaExceeded``), like :func:`recover_account`."""
    ctx.rate_limits.require_recover(account_id)
    now = ctx.now()
    with ctx.store.begin() as conn:
        endpoint = endpoints_store.get_account_endpoint(conn, account_id, endpoint_id)
        if endpoint is None:
            raise NotFound(f"no webhook endpoint {endpoint_id!r} in this account")
        _require_usable(endpoint)
        ids = deliveries_store.failed_for_endpoint(conn, endpoint_id, since, MAX_RECOVER)
        for delivery_id in ids:
            deliveries_store.start_round(conn, delivery_id, at=now, round_limit=None)
    for delivery_id in ids:
        ctx.queue.deliver_webhook(delivery_id)
    return ids


def recover_account(ctx: Context, account_id: str, status: str, since: datetime) -> list[str]:
    """The account's deliveries since ``since``, to jobs' own URLs and to endpoints that
    can receive: failed ones get a fresh round on their schedule, pending ones are made due
    now. Returns their ids, oldest first (at most MAX_RECOVER a call). Counts against the
    account's recover quota (``QuotaExceeded``)."""
    ctx.rate_limits.require_recover(account_id)
    now = ctx.now()
    with ctx.store.begin() as conn:
        ids = deliveries_store.account_deliveries_to_recover(
            conn, account_id, status, since, MAX_RECOVER
        )
        for delivery_id in ids:
            if status == deliveries_store.PENDING:
                deliveries_store.reschedule(conn, delivery_id, now)
            else:
                deliveries_store.start_round(conn, delivery_id, at=now, round_limit=None)
    for delivery_id in ids:
        ctx.queue.deliver_webhook(delivery_id)
    return ids


def _require_usable(endpoint: EndpointRecord) -> None:
    reason = endpoint.unusable_reason
    if reason is None:
        return
    if endpoint.deleted_at is None:
        reason += "; PATCH it with enabled=true first"
    raise Conflict(reason)


def to_delivery(delivery: DeliveryRecord, attempts: list[AttemptRecord]) -> Delivery:
    return Delivery(
        id=delivery.id,
        generation_id=delivery.job_id,
        endpoint_id=delivery.endpoint_id,
        event=delivery.event,  # type: ignore[arg-type]
        url=delivery.url,
        status=delivery.status,  # type: ignore[arg-type]
        attempt_count=delivery.attempt_count,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
        delivered_at=delivery.delivered_at,
        attempts=[
            DeliveryAttempt(
                attempted_at=a.attempted_at,
                url=a.url,
                response_status=a.response_status,
                latency_ms=a.latency_ms,
                error=a.error,
                response_body=a.response_body,
                dedup_unavailable=a.dedup_unavailable,
            )
            for a in attempts
        ],
    )
