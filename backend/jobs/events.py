"""What a job's events are and where they go: the delivery outbox.

An event becomes one delivery row per destination, written in the same transaction as the
state change that caused it, with its body frozen: the job's own ``webhook_url`` (signed
with the account's secret) and every enabled endpoint of the account subscribed to the
event (each signed with its own secret). A URL gets each event once, even if it is both.
After the commit, :func:`announce` enqueues the first attempts; if that enqueue is lost,
the recovery sweep finds the rows.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from backend import ids
from backend.context import Context
from backend.jobs.states import JobStatus
from backend.jobs.view import to_webhook_payload
from backend.settings import Settings
from backend.store import deliveries as deliveries_store
from backend.store import endpoints as endpoints_store
from backend.store.deliveries import DeliveryRecord
from backend.store.jobs import JobRecord
from backend.store.types import utcnow
from backend.webhooks.retry import policy_for

COMPLETED = "video.generation.completed"
FAILED = "video.generation.failed"
CANCELED = "video.generation.canceled"
STATUS_CHANGED = "video.generation.status_changed"

_TERMINAL_EVENTS = {
    JobStatus.COMPLETED: COMPLETED,
    JobStatus.FAILED: FAILED,
    JobStatus.CANCELED: CANCELED,
}


def record_terminal(
    conn: sa.Connection, settings: Settings, job: JobRecord
) -> list[DeliveryRecord]:
    """Outbox rows announcing that ``job`` completed, failed or was canceled."""
    event = _TERMINAL_EVENTS[job.status]
    return _record(conn, settings, job, event, job.status.value, to_job_url=True)


def record_phase_change(
    conn: sa.Connection, settings: Settings, job: JobRecord
) -> list[DeliveryRecord]:
    """Outbox rows announcing the phase ``job`` just entered (subscribed endpoints only)."""
    return _record(conn, settings, job, STATUS_CHANGED, job.phase.value, to_job_url=False)


def announce(ctx: Context, deliveries: list[DeliveryRecord]) -> None:
    """Enqueue the first attempt of each new delivery, at the time it is due."""
    now = ctx.now()
    for delivery in deliveries:
        due = delivery.next_attempt_at or now
        ctx.queue.deliver_webhook(delivery.id, delay_seconds=max(0.0, (due - now).total_seconds()))


def _record(
    conn: sa.Connection,
    settings: Settings,
    job: JobRecord,
    event: str,
    state: str,
    *,
    to_job_url: bool,
) -> list[DeliveryRecord]:
    # url -> (endpoint id or None for the job's own URL, delay of the first attempt)
    destinations: dict[str, tuple[str | None, float]] = {}
    if to_job_url and job.webhook_url:
        destinations[job.webhook_url] = (None, policy_for(settings, None).schedule[0])
    for endpoint in endpoints_store.subscribed_endpoints(conn, job.account_id, event):
        first_delay = policy_for(settings, endpoint).schedule[0]
        destinations.setdefault(endpoint.url, (endpoint.id, first_delay))
    if not destinations:
        return []
    payload = to_webhook_payload(job, event).model_dump_json()
    now = utcnow()
    created: list[DeliveryRecord] = []
    for url, (endpoint_id, first_delay) in destinations.items():
        delivery = deliveries_store.create_delivery(
            conn,
            delivery_id=ids.delivery_id(),
            job_id=job.id,
            account_id=job.account_id,
            endpoint_id=endpoint_id,
            event=event,
            job_state=state,
            url=url,
            payload=payload,
            next_attempt_at=now + timedelta(seconds=first_delay),
        )
        if delivery is not None:  # already recorded (a re-run of the same transition)
            created.append(delivery)
    return created
