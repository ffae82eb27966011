"""Step 2: hand a paid, pending job to its provider and start polling it."""

from __future__ import annotations

import logging

from backend.context import Context
from backend.errors import ProviderRejected, ProviderTransient
from backend.jobs import finish
from backend.jobs.backoff import transient_delay_seconds
from backend.jobs.poll import new_poll_token
from backend.jobs.states import JobStatus
from backend.locks import LOCK_BUSY_RETRY_SECONDS, job_lock
from backend.providers.base import RenderRequest
from backend.store import jobs as jobs_store

log = logging.getLogger(__name__)


def submit(ctx: Context, job_id: str) -> None:
    """Submit once. Safe to run twice for one job: the provider gets the job id as an
    idempotency key and only one run can move the job out of ``pending``."""
    with job_lock(ctx.redis, job_id) as mine:
        if not mine:
            ctx.queue.submit_job(job_id, delay_seconds=LOCK_BUSY_RETRY_SECONDS)
            return
        poll_token = _submit_locked(ctx, job_id)
    if poll_token is not None:
        # Only now that the lock is free can the first poll take it. Polling at once makes
        # phase and ETA come from the provider from the start.
        ctx.queue.poll_job(job_id, poll_token, delay_seconds=0)


def _submit_locked(ctx: Context, job_id: str) -> str | None:
    """Submit; returns the poll token of the new poll chain if the job is now processing."""
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
    if job is None or job.status != JobStatus.PENDING:
        return None
    provider = ctx.providers[job.provider]
    request = RenderRequest(
        job_id=job.id,
        model=job.model,
        prompt=job.prompt,
        duration_seconds=job.duration_seconds,
        aspect_ratio=job.aspect_ratio,
    )
    try:
        provider_job_id = provider.submit(request)
    except ProviderTransient as exc:
        _retry_later(ctx, job_id, job.poll_failures + 1, exc)
        return None
    except ProviderRejected as exc:
        finish.fail(ctx, job_id, code=exc.code, message=exc.message)
        return None
    return _start_polling(ctx, job_id, provider_job_id)


def _start_polling(ctx: Context, job_id: str, provider_job_id: str) -> str | None:
    """Record the provider's id and open the job's poll chain."""
    now = ctx.now()
    token = new_poll_token()
    with ctx.store.begin() as conn:
        job = jobs_store.transition(
            conn,
            job_id,
            JobStatus.PROCESSING,
            provider_job_id=provider_job_id,
            submitted_at=now,
            poll_token=token,
            poll_failures=0,
            next_poll_at=now,
        )
    if job is None:
        return None
    log.info("job %s submitted to %s as %s", job_id, job.provider, provider_job_id)
    ctx.cache.put(job, now)
    return token


def _retry_later(ctx: Context, job_id: str, failures: int, exc: ProviderTransient) -> None:
    limit = ctx.settings.poll_max_transient_failures
    if failures > limit:
        finish.fail(
            ctx,
            job_id,
            code="provider_unavailable",
            message=f"submission failed {failures} times in a row; last: {exc.message}",
        )
        return
    delay = transient_delay_seconds(ctx.settings.poll_interval_seconds, failures, exc)
    with ctx.store.begin() as conn:
        jobs_store.update_job(conn, job_id, poll_failures=failures, updated_at=ctx.now())
    log.warning("job %s: submission failed (%s); retry %d in %.1fs", job_id, exc, failures, delay)
    ctx.queue.submit_job(job_id, delay_seconds=delay)
