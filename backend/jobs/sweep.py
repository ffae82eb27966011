"""Step 5: the recovery passes that make "nothing lost" true (and retention's deletes).

Messages live in Redis and Redis may lose them (a restart, a flush, a worker killed with
its messages, a crash between a commit and an enqueue). The database knows what every job
and delivery is waiting for, so:

- every few seconds ``recover_overdue`` runs cheap indexed queries for work overdue by
  more than ``recovery_grace_seconds`` (a submission, a poll, a delivery attempt, a
  signup mail) and
  enqueues it again, at once (no grace) when a worker or scheduler starts and when Redis
  comes back empty or restarted, so a lost message costs well under a minute;
- every ``sweep_interval_seconds`` ``run_sweeps`` also fails and refunds jobs past their
  maximum wait and deletes what retention says to.

Work whose lock is held (a long provider call, a copy) is not overdue, it is running; work
due later (a delayed retry, a long render's next poll) is waiting: neither is touched. The
steps are idempotent, so a pass that races a late message does no harm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from backend import redis_keys
from backend.context import Context
from backend.jobs import failover, finish
from backend.jobs.tokens import new_poll_token
from backend.storage.retention import delete_expired_outputs
from backend.store import deliveries as deliveries_store
from backend.store import idempotency as idempotency_store
from backend.store import jobs as jobs_store
from backend.store import signup as signup_store
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
    #: Sweeps and items that raised: logged and skipped, never stopping the rest.
    errors: int = 0


class _Errors:
    """Counts what raised in one run of the sweeps; each is logged with its traceback."""

    def __init__(self) -> None:
        self.count = 0

    def run(self, name: str, sweep: Callable[[Context], int], ctx: Context) -> int:
        """One sweep; if it raises, the others still run."""
        try:
            return sweep(ctx)
        except Exception:
            self.count += 1
            log.exception("sweep %s failed; the other sweeps go on", name)
            return 0


@dataclass(frozen=True)
class RecoveryReport:
    resubmitted: int
    repolled: int
    redelivered: int
    probed: int = 0
    mails_resent: int = 0
    errors: int = 0


def recover_overdue(ctx: Context, *, grace_seconds: float | None = None) -> RecoveryReport:
    """Enqueue again what is overdue by more than ``grace_seconds`` (default: the
    ``recovery_grace_seconds`` setting; 0 right after a start or a Redis loss)."""
    grace = ctx.settings.recovery_grace_seconds if grace_seconds is None else grace_seconds
    cutoff = ctx.now() - timedelta(seconds=grace)
    errors = _Errors()
    report = RecoveryReport(
        resubmitted=errors.run("resubmit_stalled", lambda c: resubmit_stalled(c, cutoff), ctx),
        repolled=errors.run("repoll_stalled", lambda c: repoll_stalled(c, cutoff), ctx),
        redelivered=errors.run("redeliver_stalled", lambda c: redeliver_stalled(c, cutoff), ctx),
        probed=errors.run("probe_waiting_destinations", probe_waiting_destinations, ctx),
        mails_resent=errors.run(
            "resend_stalled_mails", lambda c: resend_stalled_mails(c, cutoff), ctx
        ),
        errors=errors.count,
    )
    if any(vars(report).values()):
        log.info("recovered overdue work: %s", report)
    return report


def probe_waiting_destinations(ctx: Context) -> int:
    """Every ``webhook_probe_interval_seconds``, each destination whose retries all wait
    for a later slot (it was down) gets one of them tried early. A receiver back from an
    outage then answers 2xx, and that brings its backlog forward at once, instead of
    waiting for the next slot of the long tail (up to hours). A failed probe changes nothing
    (``deliver``): the deliveries keep their slots and their attempts."""
    interval = ctx.settings.webhook_probe_interval_seconds
    try:
        if not ctx.redis.set(
            redis_keys.destination_probe(), "1", nx=True, ex=max(1, round(interval))
        ):
            return 0  # probed less than an interval ago
    except redis.RedisError:
        return 0
    later = ctx.now() + timedelta(seconds=interval)
    probes: list[str] = []
    with ctx.store.begin() as conn:
        for endpoint_id, account_id, url in deliveries_store.waiting_destinations(conn, later):
            waiting = deliveries_store.waiting_for_destination(
                conn,
                endpoint_id=endpoint_id,
                account_id=account_id,
                url=url,
                later_than=later,
                limit=1,
            )
            probes += [delivery_id for delivery_id, _ in waiting]
    for delivery_id in probes:
        ctx.queue.deliver_webhook(delivery_id, probe=True)
    return len(probes)


def run_sweeps(ctx: Context) -> SweepReport:
    """Every sweep, each on its own: one that raises (a poison row, a storage outage) is
    logged and counted, and the others run all the same."""
    errors = _Errors()
    expired = errors.run("expire_overdue", lambda c: expire_overdue(c, errors), ctx)
    report = SweepReport(
        expired=expired,
        resubmitted=errors.run("resubmit_stalled", resubmit_stalled, ctx),
        repolled=errors.run("repoll_stalled", repoll_stalled, ctx),
        redelivered=errors.run("redeliver_stalled", redeliver_stalled, ctx),
        outputs_deleted=errors.run(
            "delete_expired_outputs", lambda c: delete_expired_outputs(c, c.now()), ctx
        ),
        idempotency_keys_forgotten=errors.run(
            "forget_idempotency_keys", forget_idempotency_keys, ctx
        ),
        errors=errors.count,
    )
    if any(vars(report).values()):
        log.info("sweep: %s", report)
    return report


def expire_overdue(ctx: Context, errors: _Errors | None = None) -> int:
    """Fail (and refund) jobs that outlived their model's maximum wait, and stop their
    renders where the provider allows. A job that cannot be failed is logged, counted in
    ``errors`` and skipped: the others are not held up behind it."""
    now = ctx.now()
    default_cutoff = now - timedelta(seconds=ctx.settings.job_timeout_seconds)
    with ctx.store.begin() as conn:
        ids = jobs_store.overdue_jobs(conn, now, default_cutoff)
    expired = 0
    for job_id in ids:
        try:
            failed = finish.fail(
                ctx,
                job_id,
                code="timeout",
                message="the job did not finish within its model's maximum wait",
                task_state=TaskState.ABANDONED,
            )
        except Exception:
            if errors is None:
                raise
            errors.count += 1
            log.exception("sweep: job %s could not be expired; skipped", job_id)
            continue
        if failed is not None:
            expired += 1
            failover.cancel_quietly(ctx, failed.provider, failed.provider_job_id)
    return expired


def resubmit_stalled(ctx: Context, cutoff: datetime | None = None) -> int:
    with ctx.store.begin() as conn:
        found = jobs_store.stalled_pending(conn, cutoff or _stall_cutoff(ctx))
        ids = _not_running(ctx, found, redis_keys.job_lock)
        for job_id in ids:  # touch them so the next pass waits a full grace period again
            jobs_store.update_job(conn, job_id, updated_at=ctx.now())
    for job_id in ids:
        ctx.queue.submit_job(job_id)
    return len(ids)


def repoll_stalled(ctx: Context, cutoff: datetime | None = None) -> int:
    """Start a fresh poll chain for jobs whose poll is overdue; the new token retires any
    old chain that might still be alive."""
    now = ctx.now()
    restarted: list[tuple[str, str]] = []
    with ctx.store.begin() as conn:
        found = jobs_store.stalled_polls(conn, cutoff or _stall_cutoff(ctx))
        for job_id in _not_running(ctx, found, redis_keys.job_lock):
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


def redeliver_stalled(ctx: Context, cutoff: datetime | None = None) -> int:
    """Re-enqueue deliveries whose attempt was due long ago: their message was lost (a
    Redis restart, a crash between commit and enqueue). Retries still waiting are left be."""
    with ctx.store.begin() as conn:
        found = deliveries_store.stalled_deliveries(conn, cutoff or _stall_cutoff(ctx))
        ids = _not_running(ctx, found, redis_keys.delivery_lock)
        for delivery_id in ids:
            deliveries_store.reschedule(conn, delivery_id, ctx.now())
    for delivery_id in ids:
        ctx.queue.deliver_webhook(delivery_id)
    return len(ids)


def resend_stalled_mails(ctx: Context, cutoff: datetime | None = None) -> int:
    """Re-enqueue signup mails whose attempt was due long ago: their message was lost
    (``backend/mail/outbox.py``)."""
    with ctx.store.begin() as conn:
        found = signup_store.stalled_mails(conn, cutoff or _stall_cutoff(ctx))
        ids = _not_running(ctx, found, redis_keys.mail_lock)
        for mail_id in ids:
            signup_store.reschedule(conn, mail_id, ctx.now())
    for mail_id in ids:
        ctx.queue.send_signup_mail(mail_id)
    return len(ids)


def forget_idempotency_keys(ctx: Context) -> int:
    """Delete answers remembered for idempotency keys past their 24 hours (a batch a run)."""
    with ctx.store.begin() as conn:
        return idempotency_store.delete_expired(conn, ctx.now())


def _not_running(ctx: Context, ids: list[str], lock_key: Callable[[str], str]) -> list[str]:
    """``ids`` less those whose lock is held: a live worker is on them (locks are renewed
    while a step runs and expire soon after their holder dies). Without Redis: all."""
    if not ids:
        return ids
    try:
        pipe = ctx.redis.pipeline(transaction=False)
        for item_id in ids:
            pipe.exists(lock_key(item_id))
        held = pipe.execute()
    except redis.RedisError:
        return ids
    return [item_id for item_id, locked in zip(ids, held, strict=True) if not locked]


def _stall_cutoff(ctx: Context) -> datetime:
    return ctx.now() - timedelta(seconds=ctx.settings.sweep_stall_seconds)
