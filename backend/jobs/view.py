"""How a stored job is shown: the API's generation object and the webhook payload.

Elapsed time and ETA move with the clock, so they are computed when a job is read,
whether from the database or from the Redis status cache.
"""

from __future__ import annotations

from datetime import datetime

from backend.jobs.credits import billed
from backend.schemas.generations import Generation, GenerationError, WebhookPayload
from backend.store.jobs import JobRecord

_DURATION_LABELS = {5: "5s", 10: "10s"}


def to_generation(job: JobRecord, now: datetime) -> Generation:
    generation = Generation(
        id=job.id,
        status=job.status,
        phase=job.phase,
        phase_label=job.phase.label,
        model=job.model,
        prompt=job.prompt,
        duration=_DURATION_LABELS[job.duration_seconds],  # type: ignore[arg-type]
        aspect_ratio=job.aspect_ratio,  # type: ignore[arg-type]
        credits=job.credits_charged,
        credits_billed=credits_billed(job),
        refunded=job.refunded_at is not None,
        failover_used=job.failover_used,
        rendered_model=job.rendered_model or job.model,
        webhook_url=job.webhook_url,
        metadata=job.metadata,
        image_id=job.image_id,
        end_image_id=job.end_image_id,
        output_url=job.output_url,
        error=GenerationError(**job.error) if job.error else None,
        progress=None if job.progress is None else round(job.progress, 1),
        queue_position=job.queue_position,
        elapsed_seconds=0.0,
        eta_seconds=job.eta_seconds,
        last_polled_at=job.last_polled_at,
        created_at=job.created_at,
        updated_at=job.updated_at,
        completed_at=job.completed_at,
        status_chain=job.status_chain,  # type: ignore[arg-type]
    )
    return with_live_fields(generation, now)


def with_live_fields(generation: Generation, now: datetime) -> Generation:
    """Recompute ``elapsed_seconds`` and ``eta_seconds`` for the moment ``now``."""
    end = generation.completed_at or now
    elapsed = max(0.0, (end - generation.created_at).total_seconds())
    eta: float | None
    if generation.status.is_terminal:
        eta = None
    elif generation.eta_seconds is not None:
        # The provider's estimate was given at the last poll; count down from there.
        since = generation.last_polled_at or generation.updated_at
        eta = max(0.0, generation.eta_seconds - (now - since).total_seconds())
    else:
        eta = None
    return generation.model_copy(
        update={"elapsed_seconds": round(elapsed, 3), "eta_seconds": _round(eta)}
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def to_webhook_payload(job: JobRecord, event: str) -> WebhookPayload:
    end = job.completed_at or job.updated_at
    return WebhookPayload(
        event=event,  # type: ignore[arg-type]
        id=job.id,
        status=job.status,
        phase=job.phase,
        phase_label=job.phase.label,
        model=job.model,
        prompt=job.prompt,
        output_url=job.output_url,
        credits=job.credits_charged,
        credits_billed=credits_billed(job),
        failover_used=job.failover_used,
        rendered_model=job.rendered_model or job.model,
        progress=None if job.progress is None else round(job.progress, 1),
        eta_seconds=None if job.eta_seconds is None else round(job.eta_seconds, 1),
        metadata=job.metadata,
        created_at=job.created_at,
        completed_at=job.completed_at,
        elapsed_seconds=round((end - job.created_at).total_seconds(), 3),
        error=GenerationError(**job.error) if job.error else None,
        status_chain=job.status_chain,  # type: ignore[arg-type]
    )


def credits_billed(job: JobRecord) -> int:
    """What the job costs the account in the end (mirrors its ledger rows)."""
    return 0 if job.refunded_at is not None else billed(job)
