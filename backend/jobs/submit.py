"""Step 2: hand a paid, pending job to its provider and start polling it.

Every create call is recorded first, in ``provider_tasks``, so that no task a provider
may have started (and may bill for) goes unaccounted. A create whose answer was lost is
*unknown*: before trying again, the provider is asked for a task under the job's id where
it can search by it (Kling's ``external_task_id``), so an unknown never becomes two paid
tasks there. Providers without such a lookup are retried, and the earlier attempt stays
on record as ``unknown`` for the operator.
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from backend.context import Context
from backend.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderTransient,
)
from backend.images.handoff import image_inputs
from backend.jobs import finish
from backend.jobs.backoff import transient_delay_seconds
from backend.jobs.poll import new_poll_token
from backend.jobs.states import JobStatus
from backend.locks import LOCK_BUSY_RETRY_SECONDS, job_lock
from backend.providers.base import Provider, RenderRequest
from backend.store import jobs as jobs_store
from backend.store import provider_tasks as tasks_store
from backend.store.jobs import JobRecord
from backend.store.provider_tasks import TaskState

log = logging.getLogger(__name__)

#: Where providers push status changes, under ``GENHOOK_PUBLIC_BASE_URL``.
CALLBACK_PATH = "/v1/provider-callbacks/{provider}/{token}"


def submit(ctx: Context, job_id: str) -> None:
    """Submit once. Safe to run twice for one job: only one run can move the job out of
    ``pending``, and a lost answer is resolved by looking the task up, not by guessing."""
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
        earlier = tasks_store.tasks_of_job(conn, job_id) if job else []
    if job is None or job.status != JobStatus.PENDING:
        return None
    provider = ctx.providers.get(job.provider)
    if provider is None:
        finish.fail(
            ctx, job_id, code="provider_not_configured", message=f"{job.provider} is not enabled"
        )
        return None
    uncertain = _uncertain_row(earlier)
    if uncertain is not None and provider.supports_find_task:
        try:
            found = provider.find_task(job.id)
        except ProviderError as exc:
            _handle_error(ctx, job, None, exc)
            return None
        if found is not None:
            log.info("job %s: the task of a lost answer was found: %s", job_id, found)
            return _start_polling(ctx, job, uncertain, found)
    return _create_task(ctx, job, provider)


def _create_task(ctx: Context, job: JobRecord, provider: Provider) -> str | None:
    callback_url, token_hash = _callback_url(ctx, job.provider)
    with ctx.store.begin() as conn:
        row_id = tasks_store.start_task(
            conn,
            job_id=job.id,
            provider=job.provider,
            provider_model=job.provider_model or job.model,
            callback_token_hash=token_hash,
        )
        image, end_image = image_inputs(ctx.settings, conn, job, ctx.now())
    request = RenderRequest(
        job_id=job.id,
        model=job.provider_model or job.model,
        prompt=job.prompt,
        duration_seconds=job.duration_seconds,
        aspect_ratio=job.aspect_ratio,
        image=image,
        end_image=end_image,
        callback_url=callback_url if provider.supports_callbacks else None,
    )
    try:
        task_id = provider.submit(request)
    except ProviderError as exc:
        _handle_error(ctx, job, row_id, exc)
        return None
    return _start_polling(ctx, job, row_id, task_id)


def _callback_url(ctx: Context, provider: str) -> tuple[str | None, str | None]:
    """A fresh, unguessable callback URL for one task (only its hash is stored)."""
    base = ctx.settings.public_base_url
    if not base:
        return None, None
    token = secrets.token_urlsafe(32)
    path = CALLBACK_PATH.format(provider=provider, token=token)
    return base.rstrip("/") + path, hashlib.sha256(token.encode()).hexdigest()


def _uncertain_row(earlier: list[tasks_store.ProviderTaskRecord]) -> int | None:
    """The last create call whose outcome is not known: its answer was lost, or the worker
    died while making it (still ``submitting``)."""
    uncertain = [t for t in earlier if t.state in (TaskState.UNKNOWN, TaskState.SUBMITTING)]
    return uncertain[-1].id if uncertain else None


def _start_polling(ctx: Context, job: JobRecord, row_id: int | None, task_id: str) -> str | None:
    """Record the provider's task and open the job's poll chain."""
    now = ctx.now()
    token = new_poll_token()
    with ctx.store.begin() as conn:
        if row_id is not None:
            tasks_store.update_task(conn, row_id, TaskState.RUNNING, task_id=task_id)
        updated = jobs_store.transition(
            conn,
            job.id,
            JobStatus.PROCESSING,
            provider_job_id=task_id,
            submitted_at=now,
            poll_token=token,
            poll_failures=0,
            next_poll_at=now,
        )
    if updated is None:
        return None
    log.info("job %s submitted to %s as %s", job.id, job.provider, task_id)
    ctx.cache.put(updated, now)
    return token


def _handle_error(ctx: Context, job: JobRecord, row_id: int | None, exc: ProviderError) -> None:
    """Transient and unknown outcomes are retried with backoff; the rest end the job.

    Failing over to another route instead is the routing step's job (a later issue)."""
    unknown = isinstance(exc, ProviderOutcomeUnknown)
    if row_id is not None:
        state = TaskState.UNKNOWN if unknown else TaskState.REFUSED
        with ctx.store.begin() as conn:
            tasks_store.update_task(conn, row_id, state, error=str(exc))
    if isinstance(exc, ProviderTransient | ProviderOutcomeUnknown):
        _retry_later(ctx, job.id, job.poll_failures + 1, exc)
        return
    code = exc.code if isinstance(exc, ProviderRejected) else "provider_unavailable"
    finish.fail(ctx, job.id, code=code, message=exc.message)


def _retry_later(ctx: Context, job_id: str, failures: int, exc: ProviderError) -> None:
    limit = ctx.settings.poll_max_transient_failures
    if failures > limit:
        finish.fail(
            ctx,
            job_id,
            code="provider_unavailable",
            message=f"submission failed {failures} times in a row; last: {exc.message}",
        )
        return
    transient = exc if isinstance(exc, ProviderTransient) else None
    delay = transient_delay_seconds(ctx.settings.poll_interval_seconds, failures, transient)
    with ctx.store.begin() as conn:
        jobs_store.update_job(conn, job_id, poll_failures=failures, updated_at=ctx.now())
    log.warning("job %s: submission failed (%s); retry %d in %.1fs", job_id, exc, failures, delay)
    ctx.queue.submit_job(job_id, delay_seconds=delay)
