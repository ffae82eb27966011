"""Step 1: accept a generation request, charge for it and queue it for submission."""

from __future__ import annotations

import logging

from backend import ids
from backend.catalog import MODELS
from backend.context import Context
from backend.jobs.credits import charge
from backend.schemas.generations import GenerationCreate
from backend.store import jobs as jobs_store
from backend.store.jobs import JobRecord
from backend.webhooks import url_guard

log = logging.getLogger(__name__)


def create_generation(ctx: Context, account_id: str, request: GenerationCreate) -> JobRecord:
    """Debit and insert in one transaction, then enqueue the submission.

    If enqueueing fails the job is still safe in the database and the recovery sweep
    submits it later, so the client gets its 202 either way.
    """
    if request.webhook_url is not None:
        url_guard.require_public(
            request.webhook_url, ctx.settings.webhook_allowed_networks, "webhook_url"
        )

    model = MODELS[request.model]
    price = model.price(request.duration_seconds)
    job_id = ids.job_id()
    with ctx.store.begin() as conn:
        job = jobs_store.insert_job(
            conn,
            job_id=job_id,
            account_id=account_id,
            model=model.id,
            prompt=request.prompt,
            duration_seconds=request.duration_seconds,
            aspect_ratio=request.aspect_ratio,
            webhook_url=request.webhook_url,
            metadata=request.metadata,
            provider=model.provider,
            credits_charged=price,
        )
        # Raises InsufficientCredits, which rolls the insert back with it.
        charge(conn, account_id=account_id, job_id=job_id, amount=price)
    ctx.cache.put(job, ctx.now())
    ctx.queue.submit_job(job.id)
    log.info("job %s accepted: %s, %s credits", job.id, model.id, price)
    return job
