"""Step 4: POST the signed result to the job's webhook_url and log the attempt.

One attempt per message for now; retries, dedup and the delivery API build on this.
"""

from __future__ import annotations

import logging

from backend import redis_keys
from backend.context import Context
from backend.errors import UnsafeWebhookTarget
from backend.jobs.states import JobStatus
from backend.jobs.view import to_webhook_payload
from backend.locks import held
from backend.store import accounts as accounts_store
from backend.store import deliveries as deliveries_store
from backend.store import jobs as jobs_store
from backend.webhooks import url_guard
from backend.webhooks.sender import AttemptResult, post_webhook
from backend.webhooks.signing import signature_headers

log = logging.getLogger(__name__)


def deliver(ctx: Context, delivery_id: str) -> None:
    """Send a pending delivery once; a concurrent duplicate message finds the lock taken,
    a later one finds the delivery no longer pending."""
    lock = redis_keys.delivery_lock(delivery_id)
    with held(ctx.redis, lock, redis_keys.DELIVERY_LOCK_TTL_SECONDS) as mine:
        if mine:
            _deliver_locked(ctx, delivery_id)


def _deliver_locked(ctx: Context, delivery_id: str) -> None:
    with ctx.store.begin() as conn:
        delivery = deliveries_store.get_delivery(conn, delivery_id)
        if delivery is None or delivery.status != deliveries_store.PENDING:
            return
        job = jobs_store.get_job(conn, delivery.job_id)
        account = accounts_store.get_account(conn, delivery.account_id)
    assert (
        job is not None
        and account is not None
        and job.status
        in (
            JobStatus.COMPLETED,
            JobStatus.FAILED,
        )
    )
    body = to_webhook_payload(job).model_dump_json().encode()
    attempted_at = ctx.now()
    try:
        url_guard.check_url(delivery.url, ctx.settings.webhook_allowed_networks)
    except UnsafeWebhookTarget as exc:
        result = AttemptResult(None, 0, f"refused: {exc}", None)
    else:
        headers = signature_headers(
            secret=account.signing_secret,
            message_id=delivery.id,
            event=delivery.event,
            timestamp=attempted_at,
            body=body,
        )
        result = post_webhook(
            ctx.webhook_client, delivery.url, body, headers, ctx.settings.webhook_timeout_seconds
        )
    outcome = deliveries_store.DELIVERED if result.succeeded else deliveries_store.FAILED
    with ctx.store.begin() as conn:
        deliveries_store.record_attempt(
            conn,
            delivery.id,
            attempted_at=attempted_at,
            response_status=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            response_body=result.response_body,
            outcome=outcome,
        )
    log.info("delivery %s of job %s: %s (%s)", delivery.id, job.id, outcome, result.error or "ok")
