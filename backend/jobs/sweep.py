"""Step 5: the recovery sweeps that make "nothing lost" true (and retention's deletes).

Messages live in Redis and Redis may lose them (a restart, a crash between a commit and an
enqueue). The database knows what every job is waiting for, so a periodic sweep finds
work that is overdue and enqueues it again; the steps themselves are idempotent, so a
sweep that races a late message does no harm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.context import Context
from backend.jobs import failover, finish
from backend.jobs.tokens import new_poll_token
from backend.storage.retention import delete_expired_outputs
from backend.store import deliveries as deliveries_store
from backend.store import idempotency as idempotency_store
from backend.store import jobs as jobs_store
from backend.store.provider_tasks import TaskState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    resubmitted: int
    repolled: int
    expired: int
    redelivered: int
    outputs_deleted: int = 0
    idempotency_keys_forgotten: int = 0


def run_sweeps(ctx: Context) -> SweepReport:
    report = SweepReport(
        expired=expire_overdue(ctx),
        resubmitted=resubmit_stalled(ctx),
        repolled=repoll_stalled(ctx),
        redelivered=redeliver_stalled(ctx),
        outputs_deleted=delete_expired_outputs(ctx, ctx.now()),
        idempotency_keys_forgotten=forget_idempotency_keys(ctx),
    )
    if any(vars(report).values()):
        log.info("sweep: %s", report)
    return report


def expire_overdue(ctx: Context) -> int:
    """Fail (and refund) jobs that outlived their model's maximum wait, and stop their
    renders where the provider allows."""
    now = ctx.now()
    default_cutoff = now - timedelta(seconds=ctx.settings.job_timeout_seconds)
    with ctx.store.begin() as conn:
        ids = jobs_store.overdue_jobs(conn, now, default_cutoff)
    expired = 0
    for job_id in ids:
        failed = finish.fail(
            ctx,
            job_id,
            code="timeout",
            message="the job did not finish within its model's maximum wait",
            task_state=TaskState.ABANDONED,
        )
        if failed is not None:
            expired += 1
            failover.cancel_quietly(ctx, failed.provider, failed.provider_job_id)
    return expired


def resubmit_stalled(ctx: Context) -> int:
    with ctx.store.begin() as conn:
        ids = jobs_store.stalled_pending(conn, _stall_cutoff(ctx))
        for job_id in ids:  # touch them so the next sweep waits a full stall period again
            jobs_store.update_job(conn, job_id, updated_at=ctx.now())
    for job_id in ids:
        ctx.queue.submit_job(job_id)
    return len(ids)


def repoll_stalled(ctx: Context) -> int:
    """Start a fresh poll chain for jobs whose poll is overdue; the new token retires any
    old chain that might still be alive."""
    now = ctx.now()
    restarted: list[tuple[str, str]] = []
    with ctx.store.begin() as conn:
        for job_id in jobs_store.stalled_polls(conn, _stall_cutoff(ctx)):
            token = new_poll_token()
            jobs_store.update_job(
                conn,
                job_id,
                poll_token=token,
                next_poll_at=now + timedelta(seconds=ctx.settings.poll_interval_seconds),
            )
            restarted.append((job_id, token))
    for job_id, token in restarted:
        ctx.queue.poll_job(job_id, token, delay_seconds=0)
    return len(restarted)


def redeliver_stalled(ctx: Context) -> int:
    """Re-enqueue deliveries whose attempt was due long ago: their message was lost (a
    Redis restart, a crash between commit and enqueue). Retries still waiting are left be."""
    with ctx.store.begin() as conn:
        ids = deliveries_store.stalled_deliveries(conn, _stall_cutoff(ctx))
        for delivery_id in ids:
            deliveries_store.reschedule(conn, delivery_id, ctx.now())
    for delivery_id in ids:
        ctx.queue.deliver_webhook(delivery_id)
    return len(ids)


def forget_idempotency_keys(ctx: Context) -> int:
    """Delete answers remembered for idempotency keys past their 24 hours (a batch a run)."""
    with ctx.store.begin() as conn:
        return idempotency_store.delete_expired(conn, ctx.now())


def _stall_cutoff(ctx: Context) -> datetime:
    return ctx.now() - timedelta(seconds=ctx.settings.sweep_stall_seconds)
