"""Step 2b: move a job to the next route of its plan when its provider cannot render it.

The plan (``backend/jobs/routes.py``) lists the routes a job may take, in order. A job
moves along it when a submission is refused for the provider's reasons (rate limit,
capacity, quota, 5xx, timeout, auth), when a render dies of the provider's trouble
mid-way, or when polling loses the provider. Rules:

- A route whose provider is not enabled here is skipped; so is one whose circuit breaker
  is open (``backend/providers/health.py``) while another route can take the job.
- Mid-render, a route of a model priced above what the job was charged is skipped: the
  render started paid for, and a second charge never happens.
- At submission any route may be used. Either way, once a route accepts the job
  (``submit.py``), it is billed the lower of what it was billed and that route's model
  price, and the difference is refunded at once (``backend/jobs/credits.py:reprice``); a
  cheaper route that refused the job changes nothing.
- Each move is a ``failover`` entry in the job's status chain (route index, model,
  reason) and sets ``failover_used``.

Moving is one transaction: the job goes back to ``pending`` on its new route, the
abandoned provider task is closed, the price drop is refunded. Then the submission is
enqueued; if that message is lost, the sweep resubmits pending jobs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from backend.context import Context
from backend.errors import ProviderError
from backend.jobs import finish
from backend.jobs.routes import PlannedRoute, plan_of
from backend.jobs.states import JobPhase, JobStatus
from backend.store import jobs as jobs_store
from backend.store import provider_tasks as tasks_store
from backend.store.jobs import JobRecord
from backend.store.provider_tasks import TaskState

log = logging.getLogger(__name__)

#: Status-chain events written here.
FAILOVER = "failover"
ROUTE_SKIPPED = "route_skipped"


@dataclass(frozen=True)
class Choice:
    """The route a job should take next, and the routes passed over on the way."""

    index: int
    skipped: list[dict[str, Any]]


def choose_route(
    ctx: Context, job: JobRecord, start: int, *, price_cap: int | None
) -> Choice | None:
    """The first usable route at or after ``start``; None when there is none.

    A route cooling down in the circuit breaker is passed over while a later one can take
    the job; when every usable route is cooling down the first is tried anyway, since
    failing the job would be worse than one more attempt."""
    plan = plan_of(job.route_plan)
    now = ctx.now()
    usable = [
        index
        for index in range(start, len(plan))
        if plan[index].provider in ctx.providers
        and (price_cap is None or plan[index].credits <= price_cap)
    ]
    skipped: list[dict[str, Any]] = []
    for index in usable:
        cooling_until = ctx.health.cooling_down_until(plan[index].key, now)
        if cooling_until is None:
            return Choice(index, skipped)
        skipped.append(
            _note(ROUTE_SKIPPED, index, plan[index], "cooling_down", until=cooling_until)
        )
    return Choice(usable[0], []) if usable else None


def move(
    ctx: Context,
    job: JobRecord,
    choice: Choice,
    *,
    reason: str,
    task_state: TaskState | None,
) -> JobRecord | None:
    """Put the job on route ``choice.index``, waiting for submission there.

    ``task_state`` closes the job's open provider task (``failed`` when the render died,
    ``abandoned`` when genhook walks away from a task that may still run; None when no
    task was opened). Returns the moved job, or None if it had moved on meanwhile."""
    plan = plan_of(job.route_plan)
    hop = plan[choice.index]
    is_failover = choice.index != job.route_index or task_state is not None
    note = _note(FAILOVER if is_failover else ROUTE_SKIPPED, choice.index, hop, reason)
    note["from_route_index"] = job.route_index
    with ctx.store.begin() as conn:
        current = jobs_store.get_job(conn, job.id, for_update=True)
        if current is None or current.status.is_terminal:
            return None
        for skipped in choice.skipped:
            _append_note(conn, current, skipped)
            current = jobs_store.get_job(conn, job.id)
            assert current is not None
        if task_state is not None:
            tasks_store.end_job_tasks(conn, job.id, task_state, current.provider_job_id)
        moved = jobs_store.transition(
            conn,
            job.id,
            JobStatus.PENDING,
            phase=JobPhase.QUEUED,
            restart_phase=True,
            note=note,
            route_index=choice.index,
            provider=hop.provider,
            provider_model=hop.provider_model,
            rendered_model=hop.model,
            failover_used=current.failover_used or is_failover,
            provider_job_id=None,
            poll_token=None,
            poll_failures=0,
            next_poll_at=None,
            submitted_at=None,
            progress=None,
            queue_position=None,
            eta_seconds=hop.typical_render_seconds,
        )
    if moved is not None:
        log.warning(
            "job %s: %s to route %d (%s, %s): %s",
            job.id,
            note["event"],
            choice.index,
            hop.key,
            hop.model,
            reason,
        )
        ctx.cache.put(moved, ctx.now())
    return moved


def mid_render(
    ctx: Context,
    job: JobRecord,
    *,
    code: str,
    message: str,
    task_state: TaskState,
    cancel_task: bool = False,
) -> None:
    """The render died of the provider's trouble (or genhook lost the provider): start it
    again on the next route that costs no more than the job was charged, or, with none
    left, fail the job (and refund it).

    ``cancel_task`` stops the abandoned task at its provider where the API allows, so
    the operator does not pay for a render nobody will collect."""
    old_provider, old_task = job.provider, job.provider_job_id
    choice = choose_route(ctx, job, job.route_index + 1, price_cap=job.credits_charged)
    if choice is None:
        finish.fail(ctx, job.id, code=code, message=message, task_state=task_state)
    elif move(ctx, job, choice, reason=code, task_state=task_state) is not None:
        ctx.queue.submit_job(job.id)
    if cancel_task:
        cancel_quietly(ctx, old_provider, old_task)


def cancel_quietly(ctx: Context, provider_name: str, task_id: str | None) -> bool:
    """Best effort: stop a render nobody waits for any more, so it is not paid for.
    Returns whether the provider stopped it (BytePlus, say, cancels only queued tasks)."""
    provider = ctx.providers.get(provider_name)
    if task_id is None or provider is None or not provider.supports_cancel:
        return False
    try:
        return provider.cancel(task_id)
    except ProviderError as exc:
        log.warning("could not cancel abandoned %s task %s: %s", provider_name, task_id, exc)
        return False


def rounds_used(job: JobRecord) -> int:
    """How many times the whole plan was retried from its start (each is a chain note)."""
    return sum(1 for entry in job.status_chain if entry.get("reason") == "plan_exhausted")


def _note(event: str, index: int, hop: PlannedRoute, reason: str, **extra: Any) -> dict[str, Any]:
    note: dict[str, Any] = {
        "event": event,
        "route_index": index,
        "model": hop.model,
        "reason": reason,
    }
    note.update({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in extra.items()})
    return note


def _append_note(conn: Any, job: JobRecord, note: dict[str, Any]) -> None:
    jobs_store.transition(conn, job.id, job.status, note=note)
