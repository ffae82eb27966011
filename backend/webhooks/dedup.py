"""At most one delivery of each (generation, state, destination) in the dedup window.

The database already holds one delivery row per such triple, and its state machine stops
a duplicated message from sending again. What it cannot see is a worker that crashed (or
lost the database) between a receiver's 2xx and the commit that records it: the message
is then processed again. So right after a 2xx, before touching the database, the success
is recorded in Redis (``SET NX`` with a TTL); a re-run finds it and records the delivery
without sending.

The value names the attempt that succeeded. A later, explicit redelivery has a higher
attempt number and is sent; only a success newer than anything recorded stops a send.

Redis being down never blocks a delivery (fail-open): the attempt goes ahead and is
flagged in the delivery log (``dedup_unavailable``) and in the worker's log.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis

from backend import redis_keys
from backend.slots import Slots
from backend.store.deliveries import DeliveryRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    """What Redis remembers of a delivery: whether an unrecorded success exists, or that
    Redis could not be asked."""

    already_delivered: bool
    unavailable: bool = False


def dedup_key(delivery: DeliveryRecord) -> str:
    destination = hashlib.sha256(delivery.url.encode()).hexdigest()[:32]
    return redis_keys.webhook_dedup(
        delivery.job_id, delivery.event, delivery.job_state, destination
    )


def check(client: redis.Redis, delivery: DeliveryRecord) -> Seen:
    """Has this triple been delivered by an attempt the database has not recorded?"""
    try:
        value = client.get(dedup_key(delivery))
    except redis.RedisError as exc:
        return seen_in(delivery, exc)
    return seen_in(delivery, value)


def seen_in(delivery: DeliveryRecord, value: bytes | str | redis.RedisError | None) -> Seen:
    """``check``'s answer from the key's value read elsewhere (with the sending slots, in
    one round trip), or the error that kept Redis from answering."""
    if isinstance(value, redis.RedisError):
        _unavailable(delivery, value)
        return Seen(already_delivered=False, unavailable=True)
    if value is None:
        return Seen(already_delivered=False)
    text = value.decode() if isinstance(value, bytes) else str(value)
    delivery_id, _, attempt = text.partition("#")
    if delivery_id != delivery.id:
        return Seen(already_delivered=True)  # another row for the same triple got there first
    return Seen(already_delivered=attempt.isdigit() and int(attempt) > delivery.attempt_count)


def remember(
    client: redis.Redis, delivery: DeliveryRecord, attempt_number: int, ttl_seconds: int
) -> bool:
    """Record a 2xx for this triple; ``False`` if Redis could not be told."""
    try:
        client.set(dedup_key(delivery), f"{delivery.id}#{attempt_number}", nx=True, ex=ttl_seconds)
    except redis.RedisError as exc:
        _unavailable(delivery, exc)
        return False
    return True


def remember_with_release(
    hold: Slots | None, delivery: DeliveryRecord, attempt_number: int, ttl_seconds: int
) -> None:
    """Have the sending slots' release record the 2xx too, in its round trip; once they
    are given back, ``remembered_with_release`` tells whether it was."""
    if hold is not None:
        hold.write_on_release(dedup_key(delivery), f"{delivery.id}#{attempt_number}", ttl_seconds)


def remembered_with_release(
    client: redis.Redis,
    hold: Slots | None,
    delivery: DeliveryRecord,
    attempt_number: int,
    ttl_seconds: int,
) -> bool:
    """Whether the 2xx is recorded; if the release did not (Redis down, no hold, or a
    stopping worker gave the slots back first), it is recorded now."""
    if hold is not None and hold.released:
        return True
    return remember(client, delivery, attempt_number, ttl_seconds)


def _unavailable(delivery: DeliveryRecord, exc: Exception) -> None:
    log.warning(
        "webhook dedup unavailable for delivery %s (%s); delivering anyway (fail-open)",
        delivery.id,
        exc,
        extra={"event": "webhook_dedup_unavailable"},
    )
