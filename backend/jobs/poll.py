"""Step 3: ask the provider where a render is, record the phase, and poll again later.

Each job has exactly one live poll chain, identified by ``jobs.poll_token``, which every
poll replaces with a fresh one for the next message. A message carrying any other token is
a leftover (a redelivered duplicate, or a chain the sweep replaced) and is dropped, so
duplicates can never fork the chain. Polls are Dramatiq delayed messages; no thread sleeps.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from backend.context import Context
from backend.errors import ProviderError, ProviderRejected, ProviderTransient
from backend.jobs import events, finish
from backend.jobs.backoff import transient_delay_seconds
from backend.jobs.states import JobStatus
from backend.locks import LOCK_BUSY_RETRY_SECONDS, job_lock
from backend.providers.base import RenderState, RenderStatus
from backend.store import jobs as jobs_store
from backend.store.jobs import JobRecord

log = logging.getLogger(__name__)


def poll(ctx: Context, job_id: str, poll_token: str) -> None:
    with job_lock(ctx.redis, job_id) as mine:
        if not mine:
            # Never drop a possibly live chain; a stale token is dropped on the retry.
            ctx.queue.poll_job(job_id, poll_token, delay_seconds=LOCK_BUSY_RETRY_SECONDS)
            return
        with ctx.store.begin() as conn:
            job = jobs_store.get_job(conn, job_id)
        if job is None or job.status != JobStatus.PROCESSING or job.poll_token != poll_token:
            return
        _poll_locked(ctx, job)


def poll_now(ctx: Context, job_id: str) -> None:
    """Poll at once because the provider called back; the chain continues from here.

    The job's poll token is replaced, so the chain's pending message dies quietly and the
    chain goes on from this poll: a callback can never fork it.
    """
    with job_lock(ctx.redis, job_id) as mine:
        if not mine:
            ctx.queue.poll_job_now(job_id, delay_seconds=LOCK_BUSY_RETRY_SECONDS)
            return
        with ctx.store.begin() as conn:
            job = jobs_store.get_job(conn, job_id)
        if job is None or job.status != JobStatus.PROCESSING:
            return
        _poll_locked(ctx, job)


def _poll_locked(ctx: Context, job: JobRecord) -> None:
    assert job.provider_job_id is not None
    provider = ctx.providers.get(job.provider)
    if provider is None:
        finish.fail(
            ctx, job.id, code="provider_not_configured", message=f"{job.provider} is not enabled"
        )
        return
    try:
        status = provider.poll(job.provider_job_id)
    except ProviderTransient as exc:
        _tolerate(ctx, job, exc)
        return
    except ProviderError as exc:
        # Our account lost access, or the provider refuses to say: the job cannot finish.
        code = exc.code if isinstance(exc, ProviderRejected) else "provider_unavailable"
        finish.fail(ctx, job.id, code=code, message=exc.message)
        return
    _apply(ctx, job, status)


def _apply(ctx: Context, job: JobRecord, status: RenderStatus) -> None:
    if status.state == RenderState.SUCCEEDED:
        assert status.output_url is not None
        finish.complete(
            ctx, job.id, output_url=status.output_url, polled_at=ctx.now(), cost=status.cost
        )
    elif status.state == RenderState.FAILED:
        finish.fail(
            ctx,
            job.id,
            code=status.error_code or "provider_failed",
            message=status.error_message or "the provider reported a failure",
            polled_at=ctx.now(),
            cost=status.cost,
        )
    elif status.state == RenderState.CANCELED:
        finish.fail(
            ctx,
            job.id,
            code="provider_canceled",
            message="the provider canceled the render",
            polled_at=ctx.now(),
        )
    else:
        _record_progress(ctx, job, status)


def _record_progress(ctx: Context, job: JobRecord, status: RenderStatus) -> None:
    now = ctx.now()
    interval = poll_interval_seconds(ctx, job.provider)
    token = new_poll_token()
    with ctx.store.begin() as conn:
        updated = jobs_store.transition(
            conn,
            job.id,
            JobStatus.PROCESSING,
            phase=status.phase,
            eta_seconds=_eta_seconds(job, status, now),
            progress=status.progress,
            queue_position=status.queue_position,
            last_polled_at=now,
            poll_failures=0,
            poll_token=token,
            next_poll_at=now + timedelta(seconds=interval),
        )
        if updated is None:
            return
        entered_phase = updated.phase != job.phase
        # The phase's status_changed deliveries are written with it (the outbox).
        deliveries = (
            events.record_phase_change(conn, ctx.settings, updated) if entered_phase else []
        )
    if entered_phase:
        log.info("job %s is %s", job.id, updated.phase.value)
    ctx.cache.put(updated, now)
    events.announce(ctx, deliveries)
    ctx.queue.poll_job(job.id, token, delay_seconds=interval)


def _eta_seconds(job: JobRecord, status: RenderStatus, now: datetime) -> float | None:
    """The provider's estimate, or one from its progress number: the time the task has
    taken so far, scaled to what is left. None leaves the catalog's typical time."""
    if status.eta_seconds is not None:
        return status.eta_seconds
    progress = status.progress
    if progress is None or not 0 < progress < 100 or job.submitted_at is None:
        return None
    taken = (now - job.submitted_at).total_seconds()
    return taken * (100 - progress) / progress


def _tolerate(ctx: Context, job: JobRecord, exc: ProviderTransient) -> None:
    """Ride out a provider hiccup with backoff; give up after too many in a row."""
    failures = job.poll_failures + 1
    if failures > ctx.settings.poll_max_transient_failures:
        finish.fail(
            ctx,
            job.id,
            code="provider_unavailable",
            message=f"status polling failed {failures} times in a row; last: {exc.message}",
        )
        return
    now = ctx.now()
    delay = transient_delay_seconds(ctx.settings.poll_interval_seconds, failures, exc)
    token = new_poll_token()
    with ctx.store.begin() as conn:
        jobs_store.update_job(
            conn,
            job.id,
            poll_failures=failures,
            poll_token=token,
            last_polled_at=now,
            next_poll_at=now + timedelta(seconds=delay),
        )
    log.warning("job %s: poll failed (%s); attempt %d, next in %.1fs", job.id, exc, failures, delay)
    ctx.queue.poll_job(job.id, token, delay_seconds=delay)


def poll_interval_seconds(ctx: Context, provider_name: str) -> float:
    """The regular interval, or the slower backstop when the provider will call back."""
    provider = ctx.providers.get(provider_name)
    if ctx.settings.public_base_url and provider is not None and provider.supports_callbacks:
        return ctx.settings.provider_callback_poll_seconds
    return ctx.settings.poll_interval_seconds


def new_poll_token() -> str:
    return secrets.token_hex(8)
