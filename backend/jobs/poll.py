"""Step 3: ask the provider where a render is, record the phase, and poll again later.

Each job has exactly one live poll chain, identified by ``jobs.poll_token``, which every
poll replaces with a fresh one for the next message. A message carrying any other token is
a leftover (a redelivered duplicate, or a chain the sweep replaced) and is dropped, so
duplicates can never fork the chain. Polls are Dramatiq delayed messages; no thread sleeps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from backend.context import Context
from backend.errors import ProviderError, ProviderRejected, ProviderTransient
from backend.jobs import events, failover, finish, keep_output
from backend.jobs.backoff import transient_delay_seconds
from backend.jobs.eta import (
    backstop_delay_seconds,
    estimate_eta_seconds,
    next_poll_delay_seconds,
)
from backend.jobs.routes import PlannedRoute, plan_of, route_key
from backend.jobs.states import JobStatus
from backend.jobs.tokens import new_poll_token
from backend.locks import busy_retry_delay, job_lock
from backend.providers.base import RETRYABLE_RENDER_FAILURES, RenderState, RenderStatus
from backend.store import jobs as jobs_store
from backend.store.jobs import JobRecord
from backend.store.provider_tasks import TaskState

log = logging.getLogger(__name__)

#: The expected render time of a job from before route plans were recorded.
DEFAULT_TYPICAL_RENDER_SECONDS = 120.0


def poll(ctx: Context, job_id: str, poll_token: str, *, busy: int = 0) -> None:
    with job_lock(ctx.redis, job_id) as mine:
        if not mine:
            # Never drop a possibly live chain; a stale token is dropped on the retry.
            ctx.queue.poll_job(
                job_id, poll_token, delay_seconds=busy_retry_delay(busy), busy=busy + 1
            )
            return
        with ctx.store.begin() as conn:
            job = jobs_store.get_job(conn, job_id)
        if job is None or job.status != JobStatus.PROCESSING or job.poll_token != poll_token:
            return
        _poll_locked(ctx, job)


def poll_now(ctx: Context, job_id: str, *, busy: int = 0) -> None:
    """Poll at once because the provider called back; the chain continues from here.

    The job's poll token is replaced, so the chain's pending message dies quietly and the
    chain goes on from this poll: a callback can never fork it.
    """
    with job_lock(ctx.redis, job_id) as mine:
        if not mine:
            ctx.queue.poll_job_now(job_id, delay_seconds=busy_retry_delay(busy), busy=busy + 1)
            return
        with ctx.store.begin() as conn:
            job = jobs_store.get_job(conn, job_id)
        if job is None or job.status != JobStatus.PROCESSING:
            return
        _poll_locked(ctx, job)


def poll_submitted(ctx: Context, job: JobRecord) -> None:
    """The first poll of a job just submitted, by the submitting step under its lock
    (``backend/jobs/submit.py``): no message, no second read of the row."""
    _poll_locked(ctx, job)


def _poll_locked(ctx: Context, job: JobRecord) -> None:
    if job.provider_output_url is not None:
        # Rendered: what is left is keeping the file, whatever the deadline says.
        keep_output.keep(ctx, job)
        return
    assert job.provider_job_id is not None
    if job.deadline_at is not None and ctx.now() >= job.deadline_at:
        _time_out(ctx, job)
        return
    provider = ctx.providers.get(job.provider)
    if provider is None:
        failover.mid_render(
            ctx,
            job,
            code="provider_not_configured",
            message=f"{job.provider} is not enabled",
            task_state=TaskState.ABANDONED,
        )
        return
    try:
        status = provider.poll(job.provider_job_id)
    except ProviderTransient as exc:
        _tolerate(ctx, job, exc)
        return
    except ProviderRejected as exc:
        finish.fail(ctx, job.id, code=exc.code, message=exc.message)
        return
    except ProviderError as exc:
        # Our account lost access there: the render may go on, but genhook cannot see it.
        failover.mid_render(
            ctx,
            job,
            code=exc.code,
            message=exc.message,
            task_state=TaskState.ABANDONED,
            cancel_task=True,
        )
        return
    _apply(ctx, job, status)


def _time_out(ctx: Context, job: JobRecord) -> None:
    """Past its model's maximum wait: fail and refund the job, and stop its render. The
    sweep does the same for jobs whose poll chain is lost; only one of them wins."""
    failed = finish.fail(
        ctx,
        job.id,
        code="timeout",
        message="the job did not finish within its model's maximum wait",
        task_state=TaskState.ABANDONED,
    )
    if failed is not None:
        failover.cancel_quietly(ctx, failed.provider, failed.provider_job_id)


def _apply(ctx: Context, job: JobRecord, status: RenderStatus) -> None:
    if status.state == RenderState.SUCCEEDED:
        assert status.output_url is not None
        _record_render_time(ctx, job)
        finishing = keep_output.rendered(ctx, job, status.output_url, status.cost)
        if finishing is not None:
            keep_output.keep(ctx, finishing)
    elif status.state == RenderState.FAILED and status.error_code in RETRYABLE_RENDER_FAILURES:
        ctx.health.record_failure(_route_key(job), status.error_code, ctx.now())
        failover.mid_render(
            ctx,
            job,
            code=status.error_code,
            message=status.error_message or "the provider could not finish the render",
            task_state=TaskState.FAILED,
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
        failover.mid_render(
            ctx,
            job,
            code="provider_canceled",
            message="the provider canceled the render",
            task_state=TaskState.CANCELED,
        )
    else:
        _record_progress(ctx, job, status)


def _record_progress(ctx: Context, job: JobRecord, status: RenderStatus) -> None:
    now = ctx.now()
    pace = _pace(ctx, job, status, now)
    token = new_poll_token()
    with ctx.store.begin() as conn:
        updated = jobs_store.transition(
            conn,
            job.id,
            JobStatus.PROCESSING,
            phase=status.phase,
            eta_seconds=pace.eta_seconds,
            progress=status.progress,
            queue_position=status.queue_position,
            last_polled_at=now,
            poll_failures=0,
            poll_token=token,
            next_poll_at=now + timedelta(seconds=pace.next_poll_seconds),
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
    ctx.queue.poll_job(job.id, token, delay_seconds=pace.next_poll_seconds)


@dataclass(frozen=True)
class Pace:
    eta_seconds: float
    next_poll_seconds: float


def _pace(ctx: Context, job: JobRecord, status: RenderStatus, now: datetime) -> Pace:
    """The ETA, from this route's history of real render times refined by the provider's
    progress, and when to ask again: rarely while the render is far from done, at the
    route's shortest interval near its expected end."""
    hop = _hop(job)
    typical = hop.typical_render_seconds if hop else DEFAULT_TYPICAL_RENDER_SECONDS
    model = job.rendered_model or job.model
    expected = ctx.history.expected_seconds(model, _route_key(job), typical)
    elapsed = (now - (job.submitted_at or job.created_at)).total_seconds()
    eta = estimate_eta_seconds(
        expected_total=expected,
        elapsed=elapsed,
        progress=status.progress,
        provider_eta=status.eta_seconds,
    )
    shortest = min_poll_interval_seconds(ctx, job)
    if will_call_back(ctx, job.provider):
        delay = backstop_delay_seconds(
            eta=eta, backstop=ctx.settings.provider_callback_poll_seconds, min_interval=shortest
        )
        return Pace(eta_seconds=eta, next_poll_seconds=delay)
    delay = next_poll_delay_seconds(
        expected_total=expected,
        elapsed=elapsed,
        eta=eta,
        min_interval=shortest,
        max_interval=max(shortest, poll_interval_seconds(ctx, job.provider)),
    )
    return Pace(eta_seconds=eta, next_poll_seconds=delay)


def _record_render_time(ctx: Context, job: JobRecord) -> None:
    """The render ended between the last poll that saw it running and this one: count the
    middle of that gap, so a slow poll pace does not teach the history slow renders."""
    if job.submitted_at is None:
        return
    now = ctx.now()
    seen_running = job.last_polled_at
    if seen_running is None or seen_running < job.submitted_at:
        seen_running = job.submitted_at
    ended = seen_running + (now - seen_running) / 2
    seconds = (ended - job.submitted_at).total_seconds()
    ctx.history.record(job.rendered_model or job.model, _route_key(job), seconds)


def _tolerate(ctx: Context, job: JobRecord, exc: ProviderTransient) -> None:
    """Ride out a provider hiccup with backoff; give up after too many in a row."""
    failures = job.poll_failures + 1
    if failures > ctx.settings.poll_max_transient_failures:
        failover.mid_render(
            ctx,
            job,
            code="provider_unavailable",
            message=f"status polling failed {failures} times in a row; last: {exc.message}",
            task_state=TaskState.ABANDONED,
            cancel_task=True,
        )
        return
    now = ctx.now()
    delay = transient_delay_seconds(min_poll_interval_seconds(ctx, job), failures, exc)
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
    """The longest wait between two polls: the callback backstop when the provider will
    call back, else ``GENHOOK_POLL_MAX_INTERVAL_SECONDS``."""
    if will_call_back(ctx, provider_name):
        return ctx.settings.provider_callback_poll_seconds
    return ctx.settings.poll_max_interval_seconds


def will_call_back(ctx: Context, provider_name: str) -> bool:
    """Whether the provider's tasks get a callback URL (``GENHOOK_PUBLIC_BASE_URL`` set,
    and the adapter takes one): then polling is only a backstop."""
    provider = ctx.providers.get(provider_name)
    return (
        bool(ctx.settings.public_base_url) and provider is not None and provider.supports_callbacks
    )


def min_poll_interval_seconds(ctx: Context, job: JobRecord) -> float:
    """The shortest wait between two polls of the job's route: the route's own (Runway
    asks for 5 s) or ``GENHOOK_POLL_INTERVAL_SECONDS``."""
    hop = _hop(job)
    if hop is not None and hop.poll_interval_seconds is not None:
        return hop.poll_interval_seconds
    return ctx.settings.poll_interval_seconds


def _hop(job: JobRecord) -> PlannedRoute | None:
    plan = plan_of(job.route_plan)
    return plan[job.route_index] if job.route_index < len(plan) else None


def _route_key(job: JobRecord) -> str:
    return route_key(job.provider, job.provider_model or job.model)
