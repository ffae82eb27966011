"""Step 4: keep the result. A provider's video URL expires (an hour at Replicate), so the
file is streamed into genhook's own storage before the job is announced, and clients get
genhook's own signed, expiring link to it (``backend/storage/``).

The copy is a link of the job's poll chain: when the provider reports success the job
stays ``processing`` (phase ``finishing``) with the provider's URL recorded, and the same
chain copies the file, retrying on the ``GENHOOK_OUTPUT_COPY_RETRY_SCHEDULE`` like a
webhook. A lost message is found by the sweep like any overdue poll. Only when the copy
is in does the job complete; if it never gets in (the schedule runs out, or the file is
refused: too large, not a video), the job completes with the provider's URL rather than
lose a paid render, and its status chain says so.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from backend.context import Context
from backend.errors import OutputCopyFailed
from backend.jobs import events, finish
from backend.jobs.states import JobPhase, JobStatus
from backend.jobs.tokens import new_poll_token
from backend.storage import store_for
from backend.storage.copy import copy_output
from backend.storage.links import new_link_key, signed_output_url
from backend.store import jobs as jobs_store
from backend.store import provider_tasks as tasks_store
from backend.store.jobs import JobRecord
from backend.store.provider_tasks import TaskState
from backend.webhooks.guarded_transport import total_time_limit

log = logging.getLogger(__name__)

#: One copy attempt may take this long (a large file over a slow CDN), within Dramatiq's
#: 10-minute limit per message.
COPY_TIME_LIMIT_SECONDS = 480.0


def rendered(ctx: Context, job: JobRecord, output_url: str, cost: float | None) -> JobRecord | None:
    """The provider finished: record its URL and its task as succeeded, and hand the job
    to the copy. Returns the job as recorded, for the copy (None if the job moved on)."""
    now = ctx.now()
    token = new_poll_token()
    with ctx.store.begin() as conn:
        tasks_store.end_job_tasks(conn, job.id, TaskState.SUCCEEDED, job.provider_job_id, cost)
        updated = jobs_store.transition(
            conn,
            job.id,
            JobStatus.PROCESSING,
            phase=JobPhase.FINISHING,
            provider_output_url=output_url,
            progress=100.0,
            queue_position=None,
            eta_seconds=None,
            last_polled_at=now,
            poll_failures=0,
            poll_token=token,
            next_poll_at=now,
        )
        if updated is None:
            return None
        entered_phase = updated.phase != job.phase
        deliveries = (
            events.record_phase_change(conn, ctx.settings, updated) if entered_phase else []
        )
    ctx.cache.put(updated, now)
    events.announce(ctx, deliveries)
    return updated


def keep(ctx: Context, job: JobRecord) -> None:
    """One copy attempt; completes the job, or schedules the next attempt."""
    assert job.provider_output_url is not None
    source = job.provider_output_url
    provider = ctx.providers.get(job.provider)
    headers = provider.output_headers(source) if provider is not None else {}
    # The job's lock, renewed while the copy runs, keeps the recovery passes from starting
    # a second one; if this worker dies, the lock lapses and a pass starts the copy again.
    try:
        with total_time_limit(COPY_TIME_LIMIT_SECONDS):
            stored = copy_output(
                ctx.output_client,
                source,
                store_for(ctx.settings),
                _key(job),
                max_bytes=ctx.settings.output_max_bytes,
                headers=headers,
            )
    except OutputCopyFailed as exc:
        _copy_failed(ctx, job, exc)
        return
    link_key = new_link_key()
    finish.complete(
        ctx,
        job.id,
        output_url=signed_output_url(ctx.settings, job.id, link_key, ctx.now()),
        note={"event": "output_stored", "provider_output_url": source},
        output_key=stored.key,
        output_link_key=link_key,
        output_content_type=stored.content_type,
        output_size_bytes=stored.size_bytes,
        output_stored_at=ctx.now(),
    )
    log.info("job %s: output kept (%d bytes, %s)", job.id, stored.size_bytes, stored.key)


def _copy_failed(ctx: Context, job: JobRecord, exc: OutputCopyFailed) -> None:
    attempts = job.poll_failures + 1
    schedule = ctx.settings.output_copy_retry_schedule
    if exc.retryable and attempts < len(schedule):
        delay = schedule[attempts]
        now = ctx.now()
        token = new_poll_token()
        with ctx.store.begin() as conn:
            jobs_store.update_job(
                conn,
                job.id,
                poll_failures=attempts,
                poll_token=token,
                next_poll_at=now + timedelta(seconds=delay),
            )
        log.warning("job %s: copying the output failed (%s); retry in %.1fs", job.id, exc, delay)
        ctx.queue.poll_job(job.id, token, delay_seconds=delay)
        return
    log.error("job %s: the output could not be kept (%s); the provider's URL is used", job.id, exc)
    finish.complete(
        ctx,
        job.id,
        output_url=job.provider_output_url or "",
        note={
            "event": "output_kept_at_provider",
            "reason": str(exc)[:300],
            "provider_output_url": job.provider_output_url,
        },
    )


def _key(job: JobRecord) -> str:
    """Where the file goes in the store: one folder per job (its type is stored apart)."""
    return f"{job.id}/output"
