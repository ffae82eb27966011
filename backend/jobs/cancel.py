"""Cancelling a generation at its owner's request.

The job ends ``canceled`` and is refunded exactly once, in the same transaction that
writes its ``video.generation.canceled`` deliveries (``finish.py``); then the provider
is asked to stop the render where its API allows, so nobody pays for a video nobody
wants. A job that already ended cannot be canceled (409). Racing a worker is safe: the
job row is locked by the one transition, so either the cancel or the result wins.

The provider task is closed as ``abandoned`` with the job, and recorded ``canceled`` only
once the provider has said it stopped: a cancel call that fails, that the provider
declines (a render already running at BytePlus) or that never happens (a crash after the
commit) leaves the record saying the render may still run, and be billed.
"""

from __future__ import annotations

import logging

from backend.context import Context
from backend.errors import Conflict, NotFound
from backend.jobs import failover, finish
from backend.store import jobs as jobs_store
from backend.store import provider_tasks as tasks_store
from backend.store.jobs import JobRecord
from backend.store.provider_tasks import TaskState

log = logging.getLogger(__name__)


def cancel_generation(ctx: Context, account_id: str, job_id: str) -> JobRecord:
    with ctx.store.begin() as conn:
        job = jobs_store.get_account_job(conn, account_id, job_id)
    if job is None:
        raise NotFound(f"no generation {job_id!r} in this account")
    if job.status.is_terminal:
        raise Conflict(f"the generation is already {job.status.value}")
    ended = finish.cancel(ctx, job.id, task_state=TaskState.ABANDONED)
    if ended is None:
        with ctx.store.begin() as conn:
            now = jobs_store.get_job(conn, job.id)
        state = now.status.value if now else "gone"
        raise Conflict(f"the generation is already {state}")
    log.info("job %s canceled by its owner", job.id)
    _stop_render(ctx, ended)
    return ended


def _stop_render(ctx: Context, job: JobRecord) -> None:
    """Best effort: ask the provider to stop the job's render, and record that it did."""
    task_id = job.provider_job_id
    if task_id is None or job.provider_output_url is not None:
        return  # never submitted, or rendered already (genhook was copying the file)
    if not failover.cancel_quietly(ctx, job.provider, task_id):
        log.warning("%s did not stop task %s of job %s", job.provider, task_id, job.id)
        return
    with ctx.store.begin() as conn:
        for task in tasks_store.tasks_of_job(conn, job.id):
            if task.task_id == task_id and task.state == TaskState.ABANDONED:
                tasks_store.update_task(conn, task.id, TaskState.CANCELED)
