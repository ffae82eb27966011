"""The end of a job: record the result, refund a failure, and queue its webhook.

The terminal state, the refund and the delivery rows (an outbox) are written in one
transaction, so a crash can never leave a failed job unrefunded or a result unannounced:
the recovery sweep re-sends any delivery whose message was lost.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from backend.context import Context
from backend.jobs import events
from backend.jobs.credits import refund
from backend.jobs.states import JobPhase, JobStatus
from backend.store import jobs as jobs_store
from backend.store import provider_tasks as tasks_store
from backend.store.deliveries import DeliveryRecord
from backend.store.jobs import JobRecord
from backend.store.provider_tasks import TaskState

log = logging.getLogger(__name__)


def complete(
    ctx: Context,
    job_id: str,
    *,
    output_url: str,
    note: dict[str, Any] | None = None,
    **stored: Any,
) -> JobRecord | None:
    """Mark the job completed with its output (``stored``: where genhook keeps the file);
    ``None`` if it had already ended. Its provider task was closed when it rendered."""
    return _end(
        ctx,
        job_id,
        JobStatus.COMPLETED,
        None,
        task_state=TaskState.SUCCEEDED,
        phase=JobPhase.FINISHING,
        note=note,
        output_url=output_url,
        **stored,
    )


def fail(
    ctx: Context,
    job_id: str,
    *,
    code: str,
    message: str,
    polled_at: datetime | None = None,
    task_state: TaskState = TaskState.FAILED,
    cost: float | None = None,
) -> JobRecord | None:
    """Mark the job failed and refund it; ``None`` if it had already ended.

    ``task_state`` is how its current provider task is recorded: failed, or abandoned
    when genhook gives up on a task that may still be running (a timeout)."""
    return _end(
        ctx,
        job_id,
        JobStatus.FAILED,
        polled_at,
        task_state=task_state,
        cost=cost,
        error={"code": code, "message": message},
    )


def cancel(ctx: Context, job_id: str, *, task_state: TaskState) -> JobRecord | None:
    """Mark the job canceled by its owner and refund it; ``None`` if it had already ended."""
    return _end(
        ctx,
        job_id,
        JobStatus.CANCELED,
        None,
        task_state=task_state,
        error={"code": "canceled", "message": "canceled at its owner's request"},
    )


def _end(
    ctx: Context,
    job_id: str,
    status: JobStatus,
    polled_at: datetime | None,
    *,
    task_state: TaskState,
    cost: float | None = None,
    phase: JobPhase | None = None,
    **changes: Any,
) -> JobRecord | None:
    if polled_at is not None:
        changes["last_polled_at"] = polled_at
    with ctx.store.begin() as conn:
        job = jobs_store.transition(
            conn,
            job_id,
            status,
            phase=phase,
            eta_seconds=None,
            poll_token=None,
            next_poll_at=None,
            progress=100.0 if status == JobStatus.COMPLETED else None,
            queue_position=None,
            **changes,
        )
        if job is None:
            return None
        tasks_store.end_job_tasks(conn, job.id, task_state, job.provider_job_id, cost)
        if status != JobStatus.COMPLETED:
            refund(conn, job)
            _note_elapsed(conn, job)
            job = jobs_store.get_job(conn, job_id)
            assert job is not None
        deliveries = events.record_terminal(conn, ctx.settings, job)
    _announce(ctx, job, deliveries)
    return job


def _note_elapsed(conn: Any, job: JobRecord) -> None:
    """A failure says how long the job had been running when it gave up."""
    if job.error is None:
        return
    end = job.completed_at or job.updated_at
    elapsed = round((end - job.created_at).total_seconds(), 3)
    jobs_store.update_job(conn, job.id, error={**job.error, "elapsed_seconds": elapsed})


def _announce(ctx: Context, job: JobRecord, deliveries: list[DeliveryRecord]) -> None:
    log.info("job %s %s", job.id, job.status.value)
    ctx.cache.put(job, ctx.now())
    events.announce(ctx, deliveries)
