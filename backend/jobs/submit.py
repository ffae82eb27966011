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
import time
from dataclasses import dataclass

import sqlalchemy as sa

from backend.context import Context
from backend.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderTransient,
)
from backend.images.handoff import image_inputs
from backend.jobs import failover, finish, poll
from backend.jobs.backoff import transient_delay_seconds
from backend.jobs.credits import billed as credits_billed_of
from backend.jobs.credits import reprice
from backend.jobs.routes import plan_of, route_key
from backend.jobs.states import JobStatus
from backend.jobs.tokens import new_poll_token
from backend.locks import busy_retry_delay, job_lock
from backend.providers.base import Provider, RenderRequest
from backend.store import jobs as jobs_store
from backend.store import provider_tasks as tasks_store
from backend.store.jobs import JobRecord
from backend.store.provider_tasks import TaskState

log = logging.getLogger(__name__)

#: Where providers push status changes, under ``GENHOOK_PUBLIC_BASE_URL``.
CALLBACK_PATH = "/v1/provider-callbacks/{provider}/{token}"


@dataclass(frozen=True)
class Next:
    """What the job needs next: its first poll (``polling``: the job as submitted), or
    another submit once the lock is released."""

    polling: JobRecord | None = None
    submit_delay_seconds: float | None = None


def submit(ctx: Context, job_id: str, *, busy: int = 0) -> None:
    """Submit once. Safe to run twice for one job: only one run can move the job out of
    ``pending``, and a lost answer is resolved by looking the task up, not by guessing."""
    with job_lock(ctx.redis, job_id) as mine:
        if not mine:
            ctx.queue.submit_job(job_id, delay_seconds=busy_retry_delay(busy), busy=busy + 1)
            return
        after = _submit_locked(ctx, job_id)
        if after is not None and after.polling is not None:
            _first_poll(ctx, after.polling)
            return
    # Only now that the lock is free can the next step take it.
    if after is not None and after.submit_delay_seconds is not None:
        ctx.queue.submit_job(job_id, delay_seconds=after.submit_delay_seconds)


def _first_poll(ctx: Context, job: JobRecord) -> None:
    """The chain's first poll, at once and in this message, still under the job's lock:
    phase and ETA come from the provider from the start, and a render that is already
    done (a fast model, a cached result) goes straight on to its output and its webhook
    without another message. Should it fail unexpectedly, the chain goes on from its own
    message, as any poll would after a retry."""
    assert job.poll_token is not None
    try:
        poll.poll_submitted(ctx, job)
    except Exception:
        log.exception("job %s: first poll failed; polling again from the queue", job.id)
        ctx.queue.poll_job(job.id, job.poll_token, delay_seconds=ctx.settings.poll_interval_seconds)


def _submit_locked(ctx: Context, job_id: str) -> Next | None:
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
        earlier = tasks_store.tasks_of_job(conn, job_id) if job else []
    if job is None or job.status != JobStatus.PENDING:
        return None
    provider = ctx.providers.get(job.provider)
    if provider is None:
        return _fail_over(ctx, job, "provider_not_configured", f"{job.provider} is not enabled")
    uncertain = _uncertain_row([t for t in earlier if (t.route_index or 0) == job.route_index])
    if uncertain is not None and provider.supports_find_task:
        try:
            found = provider.find_task(job.id)
        except ProviderRejected as exc:
            return _handle_error(ctx, job, None, exc)
        except ProviderError as exc:
            return _retry_same_route(ctx, job, exc)
        if found is not None:
            log.info("job %s: the task of a lost answer was found: %s", job_id, found)
            return _start_polling(ctx, job, uncertain, found)
    elif uncertain is None:
        # A fresh route: pass over it while its circuit breaker is open.
        choice = failover.choose_route(ctx, job, job.route_index, price_cap=None)
        if choice is not None and choice.index != job.route_index:
            moved = failover.move(ctx, job, choice, reason="cooling_down", task_state=None)
            return None if moved is None else Next(submit_delay_seconds=0)
    return _create_task(ctx, job, provider)


def _create_task(ctx: Context, job: JobRecord, provider: Provider) -> Next | None:
    callback_url, token_hash = _callback_url(ctx, job.provider)
    with ctx.store.begin() as conn:
        row_id = tasks_store.start_task(
            conn,
            job_id=job.id,
            provider=job.provider,
            provider_model=job.provider_model or job.model,
            callback_token_hash=token_hash,
            route_index=job.route_index,
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
    key = route_key(job.provider, request.model)
    started = time.monotonic()
    try:
        task_id = provider.submit(request)
    except ProviderError as exc:
        if not isinstance(exc, ProviderRejected):
            ctx.health.record_failure(key, exc.code, ctx.now(), time.monotonic() - started)
        return _handle_error(ctx, job, row_id, exc)
    ctx.health.record_success(key, time.monotonic() - started, ctx.now())
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


def _start_polling(ctx: Context, job: JobRecord, row_id: int | None, task_id: str) -> Next | None:
    """Record the provider's task and open the job's poll chain."""
    now = ctx.now()
    token = new_poll_token()
    with ctx.store.begin() as conn:
        updated = jobs_store.transition(
            conn,
            job.id,
            JobStatus.PROCESSING,
            note={"route_index": job.route_index, "model": job.rendered_model or job.model},
            provider_job_id=task_id,
            submitted_at=now,
            poll_token=token,
            poll_failures=0,
            next_poll_at=now,
        )
        if updated is not None:
            if row_id is not None:
                tasks_store.update_task(conn, row_id, TaskState.RUNNING, task_id=task_id)
            updated = _bill_route_price(conn, updated)
        elif row_id is not None:
            tasks_store.update_task(conn, row_id, TaskState.ABANDONED, task_id=task_id)
    if updated is None:
        # Canceled (or expired) while the create call was out: stop the new render, and
        # call it canceled only if the provider says it stopped.
        if failover.cancel_quietly(ctx, job.provider, task_id) and row_id is not None:
            with ctx.store.begin() as conn:
                tasks_store.update_task(conn, row_id, TaskState.CANCELED)
        return None
    log.info("job %s submitted to %s as %s", job.id, job.provider, task_id)
    ctx.cache.put(updated, now)
    return Next(polling=updated)


def _bill_route_price(conn: sa.Connection, job: JobRecord) -> JobRecord:
    """The route that took the job renders a model that may cost less than what the job
    was billed: bill that price from now on, the difference refunded in this transaction."""
    plan = plan_of(job.route_plan)
    if job.route_index >= len(plan):
        return job
    billed = reprice(conn, job, job.route_index, plan[job.route_index].credits)
    if billed == credits_billed_of(job):
        return job
    jobs_store.update_job(conn, job.id, credits_billed=billed)
    repriced = jobs_store.get_job(conn, job.id)
    assert repriced is not None
    return repriced


def _handle_error(
    ctx: Context, job: JobRecord, row_id: int | None, exc: ProviderError
) -> Next | None:
    """A refusal for the request's own reasons fails the job; a lost answer is retried on
    the same route (it may have created a task there); anything else is the provider's
    trouble and moves the job to its next route."""
    unknown = isinstance(exc, ProviderOutcomeUnknown)
    if row_id is not None:
        state = TaskState.UNKNOWN if unknown else TaskState.REFUSED
        with ctx.store.begin() as conn:
            tasks_store.update_task(conn, row_id, state, error=str(exc))
    if isinstance(exc, ProviderRejected):
        finish.fail(ctx, job.id, code=exc.code, message=exc.message)
        return None
    if unknown:
        return _retry_same_route(ctx, job, exc)
    return _fail_over(ctx, job, exc.code, exc.message, exc)


def _retry_same_route(ctx: Context, job: JobRecord, exc: ProviderError) -> Next | None:
    """An unknown outcome is resolved on its own route before any failover: retried (and
    looked up, where the provider can) until the transient-failure limit, then left."""
    failures = job.poll_failures + 1
    if failures > ctx.settings.poll_max_transient_failures:
        return _fail_over(ctx, job, "no_answer", exc.message, task_state=TaskState.ABANDONED)
    delay = transient_delay_seconds(ctx.settings.poll_interval_seconds, failures)
    with ctx.store.begin() as conn:
        jobs_store.update_job(conn, job.id, poll_failures=failures, updated_at=ctx.now())
    log.warning("job %s: submission failed (%s); retry %d in %.1fs", job.id, exc, failures, delay)
    return Next(submit_delay_seconds=delay)


def _fail_over(
    ctx: Context,
    job: JobRecord,
    reason: str,
    message: str,
    exc: ProviderError | None = None,
    *,
    task_state: TaskState | None = None,
) -> Next | None:
    """On to the next route; when the plan is used up, start it again after a backoff,
    a limited number of rounds, then fail (and refund)."""
    choice = failover.choose_route(ctx, job, job.route_index + 1, price_cap=None)
    if choice is not None:
        moved = failover.move(ctx, job, choice, reason=reason, task_state=task_state)
        return None if moved is None else Next(submit_delay_seconds=0)
    rounds = failover.rounds_used(job) + 1
    restart = failover.choose_route(ctx, job, 0, price_cap=None)
    if restart is None or rounds > ctx.settings.poll_max_transient_failures:
        finish.fail(
            ctx,
            job.id,
            code="no_route_available",
            message=f"every route failed {rounds} time(s); last: {reason}: {message}",
            task_state=task_state or TaskState.FAILED,
        )
        return None
    moved = failover.move(ctx, job, restart, reason="plan_exhausted", task_state=task_state)
    if moved is None:
        return None
    transient = exc if isinstance(exc, ProviderTransient) else None
    delay = transient_delay_seconds(ctx.settings.poll_interval_seconds, rounds, transient)
    log.warning("job %s: every route failed; round %d in %.1fs", job.id, rounds + 1, delay)
    return Next(submit_delay_seconds=delay)
