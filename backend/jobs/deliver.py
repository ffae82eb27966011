"""Step 4: send one attempt of a webhook delivery, log it, and decide what comes next.

Each attempt is one Dramatiq message; a retry is a delayed message, so no thread ever
sleeps waiting for a receiver to come back. The rules, in order:

* 2xx is success. Redirects are not followed and count as failures.
* 410 Gone stops the delivery at once and disables the endpoint it came from.
* A refused destination (its address is private and not allowed to the account, as it is
  now: an operator may have taken the allowance away since submission) fails at once.
* Any other failure waits for the next delay in the retry schedule (lengthened, within the
  schedule's bounds, by a ``Retry-After`` on 429/503); when the round's attempts are used
  up, the delivery is failed. The result can still be read by polling, and the delivery
  can be redelivered or recovered later.
* A delivery whose account, or whose account's destination (``host:port``), already has
  its cap of webhooks in flight sends nothing: its next attempt is put off by a growing
  delay and the message comes back then, so its thread goes to another account
  (``backend/webhooks/fairness.py``).
* A success to a destination (an endpoint, or a job's own URL) brings that destination's
  other waiting retries forward, a bounded batch at a time, so a receiver back from an
  outage gets its backlog in seconds rather than at each delivery's next long-tail slot.
* An account over its webhook quota (``GENHOOK_QUOTA_DELIVERIES``) has the attempt put off,
  uncounted, until the quota has room again.
* An endpoint that has had no success for ``webhook_endpoint_disable_after_seconds`` is
  disabled with a reason; pending deliveries to a disabled or deleted endpoint fail.

Every attempt of one delivery carries the same ``webhook-id`` (the delivery id).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa

from backend import redis_keys
from backend.context import Context
from backend.jobs.view import to_webhook_payload
from backend.locks import busy_retry_delay, held
from backend.logging_setup import redacted_url
from backend.settings import Settings
from backend.store import deliveries as deliveries_store
from backend.store import endpoints as endpoints_store
from backend.store import jobs as jobs_store
from backend.store.deliveries import DELIVERED, FAILED, PENDING, DeliveryRecord
from backend.store.endpoints import EndpointRecord
from backend.store.types import SealedSecret
from backend.webhooks import dedup, targets
from backend.webhooks.fairness import sending_slots
from backend.webhooks.retry import (
    RETRY_AFTER_STATUSES,
    next_delay,
    parse_retry_after,
    policy_for,
)
from backend.webhooks.sender import AttemptResult, post_webhook
from backend.webhooks.signing import active_secrets, signature_headers

log = logging.getLogger(__name__)

#: A message may arrive this much before its delivery is due (clocks of two hosts).
EARLY_TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True)
class Target:
    """Everything needed to send one delivery, read in one transaction."""

    delivery: DeliveryRecord
    endpoint: EndpointRecord | None
    #: The endpoint's URL as it is now (it may have been changed), else the delivery's.
    url: str
    secrets: list[str]
    body: bytes
    #: The account may reach private networks (read afresh for every attempt).
    private: bool


@dataclass(frozen=True)
class Deferred:
    """Nothing was sent: the account or the destination had its cap in flight."""

    delay_seconds: float


def deliver(ctx: Context, delivery_id: str, *, busy: int = 0, probe: bool = False) -> None:
    """Make the attempt that is due. A duplicate message finds the delivery locked (and
    comes back later, each time later still) or no longer due (and is dropped).

    A ``probe`` (``probe_waiting_destinations``) is an early attempt of a delivery waiting
    for a long slot, to see whether its destination answers again: its success delivers it
    and brings the destination's backlog forward; its failure is logged and changes nothing
    else (the delivery keeps its slot and its count of attempts)."""
    lock = redis_keys.delivery_lock(delivery_id)
    with held(ctx.redis, lock, redis_keys.DELIVERY_LOCK_TTL_SECONDS) as mine:
        if not mine:
            if not probe:  # a probe is dropped: the next one comes soon enough
                ctx.queue.deliver_webhook(
                    delivery_id, delay_seconds=busy_retry_delay(busy), busy=busy + 1
                )
            return
        retry_in = _attempt_if_due(ctx, delivery_id, probe=probe, busy=busy)
    # Enqueued only once the lock is free, so even a zero delay cannot find it taken.
    if isinstance(retry_in, Deferred):
        ctx.queue.deliver_webhook(delivery_id, delay_seconds=retry_in.delay_seconds, busy=busy + 1)
    elif retry_in is not None:
        ctx.queue.deliver_webhook(delivery_id, delay_seconds=retry_in)


def _attempt_if_due(
    ctx: Context, delivery_id: str, *, probe: bool = False, busy: int = 0
) -> float | Deferred | None:
    """Attempt the delivery if it is due (or probed); returns the delay of the next attempt,
    if any, or :class:`Deferred` if its caps were full."""
    now = ctx.now()
    target = _load(ctx, delivery_id, now, early=probe)
    if target is None:
        return None
    delivery, endpoint = target.delivery, target.endpoint
    # A probe of a delivery that came due meanwhile is an ordinary attempt.
    probe = probe and delivery.next_attempt_at is not None and delivery.next_attempt_at > now
    unusable = endpoint.unusable_reason if endpoint is not None else None
    if unusable is not None:
        _record(ctx, target, now, _not_sent(f"not sent: {unusable}"), outcome=FAILED)
        return None
    policy = policy_for(ctx.settings, endpoint)
    headers = signature_headers(
        secrets=target.secrets,
        message_id=delivery.id,
        event=delivery.event,
        timestamp=now,
        body=target.body,
    )
    # The dedup record is read with the slots, in one round trip: a put-off attempt needs
    # neither, and one that may send has both.
    seen = dedup.Seen(already_delivered=False)
    attempt_number = delivery.attempt_count + 1
    with sending_slots(
        ctx.redis, ctx.settings, delivery.account_id, target.url, read=dedup.dedup_key(delivery)
    ) as gate:
        full = gate.full
        if full is None:
            seen = dedup.seen_in(delivery, gate.value)
        if full is None and not seen.already_delivered:
            # Counted only when it would really be sent: a put-off attempt costs no quota.
            quota = ctx.rate_limits.take_delivery_attempt(delivery.account_id)
            if quota.allowed:
                reach = targets.reach(ctx, private=target.private)
                result = post_webhook(
                    reach.client,
                    target.url,
                    target.body,
                    headers,
                    policy.timeout_seconds,
                    private_reply_shown=reach.private,
                )
                if result.succeeded:  # recorded as the slots are given back, one round trip
                    dedup.remember_with_release(
                        gate.hold, delivery, attempt_number, ctx.settings.webhook_dedup_ttl_seconds
                    )
    if full is not None:  # a probe is dropped: the next one comes soon enough
        return None if probe else _defer(ctx, target, now, full, busy)
    if seen.already_delivered:
        note = "not sent again: Redis records an earlier, unlogged attempt as delivered"
        _record(ctx, target, now, _not_sent(note), outcome=DELIVERED)
        return None
    if not quota.allowed:
        return _wait_for_quota(ctx, delivery, now, quota.retry_after_seconds, probe=probe)
    unavailable = seen.unavailable
    if result.succeeded:
        remembered = dedup.remembered_with_release(
            ctx.redis,
            gate.hold,
            delivery,
            attempt_number,
            ctx.settings.webhook_dedup_ttl_seconds,
        )
        unavailable = unavailable or not remembered
        _record(
            ctx,
            target,
            now,
            result,
            outcome=DELIVERED,
            sent=True,
            dedup_unavailable=unavailable,
        )
        _bring_backlog_forward(ctx, target, now)
        return None
    if probe:
        # Still down: logged, and the delivery waits for its slot as before.
        _record(
            ctx,
            target,
            now,
            result,
            outcome=PENDING,
            sent=True,
            next_attempt_at=delivery.next_attempt_at,
            dedup_unavailable=unavailable,
            probe=True,
        )
        return None

    delay = _retry_delay(delivery, result, policy.schedule, now)
    outcome = FAILED if delay is None else PENDING
    next_at = None if delay is None else now + timedelta(seconds=delay)
    _record(
        ctx,
        target,
        now,
        result,
        outcome=outcome,
        sent=True,
        next_attempt_at=next_at,
        dedup_unavailable=unavailable,
    )
    return delay


def _defer(ctx: Context, target: Target, now: datetime, why: str, busy: int) -> Deferred:
    """Put the attempt off without counting it: its due time moves (so the recovery sweep
    does not take it for lost) and its message comes back then."""
    delay = busy_retry_delay(busy)
    with ctx.store.begin() as conn:
        deliveries_store.reschedule(conn, target.delivery.id, now + timedelta(seconds=delay))
    log.debug(
        "delivery %s to %s put off %.1fs: %s",
        target.delivery.id,
        redacted_url(target.url),
        delay,
        why,
    )
    return Deferred(delay)


def _wait_for_quota(
    ctx: Context, delivery: DeliveryRecord, now: datetime, wait_seconds: int, *, probe: bool
) -> float | None:
    """The account has sent its quota of webhooks for now: the attempt is not made, not
    counted, and waits (still pending) until the quota has room. A probe is just dropped."""
    if probe:
        return None
    with ctx.store.begin() as conn:
        deliveries_store.reschedule(conn, delivery.id, now + timedelta(seconds=wait_seconds))
    log.info(
        "delivery %s waits %d s: account %s has used its webhook delivery quota",
        delivery.id,
        wait_seconds,
        delivery.account_id,
    )
    return float(wait_seconds)


def _bring_backlog_forward(ctx: Context, target: Target, now: datetime) -> None:
    """The destination answers again: its retries waiting for a later slot are made due
    now, spread over the next BACKLOG_BATCH_SECONDS, one batch per destination at a time
    (a Redis key claims the batch). Their own successes bring the next batch. Best effort:
    without Redis, each waits for its slot as scheduled."""
    delivery = target.delivery
    destination = delivery.endpoint_id or f"{delivery.account_id} {target.url}"
    key = redis_keys.backlog(hashlib.sha256(destination.encode()).hexdigest()[:32])
    window = redis_keys.BACKLOG_BATCH_SECONDS
    if not _may_claim_backlog(key, window):
        return  # a batch was claimed (here or elsewhere) within the window: Redis not asked
    try:
        if not ctx.redis.set(key, delivery.id, nx=True, ex=window):
            return  # another success is bringing a batch forward right now
    except redis.RedisError as exc:
        log.warning("webhook backlog of %s not brought forward: %s", delivery.id, exc)
        return
    spacing = window / redis_keys.BACKLOG_BATCH_SIZE
    moved: list[tuple[str, float]] = []
    with ctx.store.begin() as conn:
        waiting = deliveries_store.waiting_for_destination(
            conn,
            endpoint_id=delivery.endpoint_id,
            account_id=delivery.account_id,
            url=delivery.url,
            later_than=now + timedelta(seconds=window),
            limit=redis_keys.BACKLOG_BATCH_SIZE,
        )
        for i, (delivery_id, was) in enumerate(waiting):
            delay = (i + 1) * spacing
            at = now + timedelta(seconds=delay)
            if deliveries_store.move_next_attempt(conn, delivery_id, was, at):
                moved.append((delivery_id, delay))
    for delivery_id, delay in moved:
        ctx.queue.deliver_webhook(delivery_id, delay_seconds=delay)
    if moved:
        log.info(
            "webhook backlog: %d retries to %s brought forward",
            len(moved),
            redacted_url(target.url),
        )


#: Per backlog key: until when (monotonic) this process knows a batch is claimed.
_backlog_claimed_until: dict[str, float] = {}


def _may_claim_backlog(key: str, window: float) -> bool:
    """Whether to ask Redis for the destination's batch claim: at most once a window per
    process, since a claim (this process's or another's) lasts that long. Every success
    to a busy receiver would otherwise make one more Redis round trip that finds it taken."""
    now = time.monotonic()
    if _backlog_claimed_until.get(key, 0.0) > now:
        return False
    if len(_backlog_claimed_until) > _BACKLOG_CLAIMS_KEPT:
        for stale in [k for k, until in _backlog_claimed_until.items() if until <= now]:
            _backlog_claimed_until.pop(stale, None)
    _backlog_claimed_until[key] = now + window
    return True


#: How many destinations' claims the process remembers before it drops expired ones.
_BACKLOG_CLAIMS_KEPT = 10_000


def _signing_secrets(
    ctx: Context,
    current: SealedSecret,
    previous: SealedSecret | None,
    previous_expires_at: datetime | None,
    now: datetime,
) -> list[str]:
    """The secrets that sign now, opened; a previous one past its overlap stays sealed."""
    if previous_expires_at is None or now >= previous_expires_at:
        previous = None
    return active_secrets(
        ctx.secret_box.open(current),
        ctx.secret_box.open_optional(previous),
        previous_expires_at,
        now,
    )


def _load(ctx: Context, delivery_id: str, now: datetime, *, early: bool = False) -> Target | None:
    with ctx.store.begin() as conn:
        row = deliveries_store.load_for_sending(conn, delivery_id)
        if row is None or row.delivery.status != PENDING:
            return None
        delivery, endpoint = row.delivery, row.endpoint
        if (
            not early
            and delivery.next_attempt_at is not None
            and delivery.next_attempt_at > now + EARLY_TOLERANCE
        ):
            return None  # an early duplicate; the scheduled message (or the sweep) will come
        body = delivery.payload
        if body is None:  # written before payloads were frozen (migration 0002)
            job = jobs_store.get_job(conn, delivery.job_id)
            assert job is not None
            body = to_webhook_payload(job, delivery.event).model_dump_json()
    if endpoint is not None:
        secrets = _signing_secrets(
            ctx,
            endpoint.secret,
            endpoint.previous_secret,
            endpoint.previous_secret_expires_at,
            now,
        )
    else:
        secrets = _signing_secrets(
            ctx,
            row.signing_secret,
            row.previous_signing_secret,
            row.previous_signing_secret_expires_at,
            now,
        )
    url = endpoint.url if endpoint is not None else delivery.url
    return Target(delivery, endpoint, url, secrets, body.encode(), row.allow_private_webhooks)


def _retry_delay(
    delivery: DeliveryRecord, result: AttemptResult, schedule: list[float], now: datetime
) -> float | None:
    """Seconds until the next attempt, or ``None`` if this failure ends the delivery."""
    if result.status_code == 410 or result.refused:
        return None
    made = delivery.round_attempts + 1
    if made >= (delivery.round_limit or len(schedule)):
        return None
    retry_after = None
    if result.status_code in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(result.retry_after, now)
    return next_delay(schedule, made, retry_after)


def _not_sent(why: str) -> AttemptResult:
    """The log entry of a decision not to send, which the delivery log shows as an attempt."""
    return AttemptResult(None, 0, why, None)


def _record(
    ctx: Context,
    target: Target,
    at: datetime,
    result: AttemptResult,
    *,
    outcome: str,
    sent: bool = False,
    next_attempt_at: datetime | None = None,
    dedup_unavailable: bool = False,
    probe: bool = False,
) -> None:
    """Log the attempt and, if a request was made, keep the endpoint's health up to date,
    in one transaction. A failed probe counts in neither the delivery's round nor the
    endpoint's failing streak."""
    delivery, endpoint = target.delivery, target.endpoint
    with ctx.store.begin() as conn:
        deliveries_store.record_attempt(
            conn,
            delivery.id,
            attempted_at=at,
            response_status=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            response_body=result.response_body,
            url=target.url if sent else None,
            dedup_unavailable=dedup_unavailable,
            outcome=outcome,
            next_attempt_at=next_attempt_at,
            counts_in_round=not probe,
        )
        if endpoint is not None and sent and not probe:
            _update_endpoint_health(conn, ctx.settings, endpoint, result, at)
    shown = redacted_url(target.url)
    error = (result.error or "").replace(target.url, shown)
    log.info(
        "delivery %s (%s to %s) attempt %d%s: %s%s",
        delivery.id,
        delivery.event,
        shown,
        delivery.attempt_count + 1,
        " (probe)" if probe else "",
        outcome,
        f" ({error})" if error else "",
    )


def _update_endpoint_health(
    conn: sa.Connection,
    settings: Settings,
    endpoint: EndpointRecord,
    result: AttemptResult,
    at: datetime,
) -> None:
    """A success ends the endpoint's failing streak; 410 Gone, or a streak longer than the
    limit, disables it with a reason (``PATCH enabled=true`` turns it back on)."""
    if result.succeeded:
        endpoints_store.note_success(conn, endpoint.id)
        return
    if result.status_code == 410:
        endpoints_store.disable(conn, endpoint.id, "the receiver answered 410 Gone", at)
        return
    current = endpoints_store.note_failure(conn, endpoint.id, at)
    failing_since = current.failing_since if current is not None else None
    limit = settings.webhook_endpoint_disable_after_seconds
    if failing_since is not None and (at - failing_since).total_seconds() >= limit:
        since = failing_since.isoformat(timespec="seconds")
        endpoints_store.disable(
            conn, endpoint.id, f"every delivery attempt has failed since {since}", at
        )
