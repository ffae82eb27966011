"""Whether a webhook may be sent now: per-account and per-destination concurrency caps.

A receiver that accepts connections and never answers holds a delivery thread for the
whole webhook timeout. Without a cap, one account pointing many endpoints at such servers
would hold every thread of the delivery pool, and every other account's webhooks would
wait behind it (issue 11, finding 2). So a delivery takes two slots before it sends: one of
its account's ``webhook_account_concurrency`` and one of the
``webhook_destination_concurrency`` of that account's destination (``host:port``), both in
one Redis round trip (and given back in one). A delivery that finds its account's cap full
sends nothing and comes back later (``deliver.py``), leaving its thread to another account.
One that finds only its destination's cap full first waits a moment
(``DESTINATION_WAIT_SECONDS``, at most) for one of that destination's sends to end: a burst
to one fast receiver then goes on at the cap's pace instead of coming back every 0.5 s,
while a hung receiver holds the waiting thread for no longer than that moment.

Destinations are counted per account: tenants that share a big receiver (a no-code
platform's webhook host) never share its slots, so one cannot use up another's.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import httpx
import redis

from backend import redis_keys
from backend.settings import Settings
from backend.slots import Slots, slots_and_value, wait_for_free

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: The longest a delivery waits for a slot of its destination before it is put off.
DESTINATION_WAIT_SECONDS = 0.25


@lru_cache(maxsize=4096)
def destination_of(url: str) -> str:
    """``host:port`` of a webhook URL, the unit a destination's cap counts in."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url  # the sender refuses it at once; any stable key will do
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 0)
    return f"{parsed.host.lower()}:{port}"


def destination_key(account_id: str, url: str) -> str:
    digest = hashlib.sha256(destination_of(url).encode()).hexdigest()[:32]
    return redis_keys.destination_slots(account_id, digest)


@dataclass(frozen=True)
class Gate:
    """What taking the slots found: why the webhook may not be sent now (``None``: the
    slots are held), and the dedup key's value read in the same round trip."""

    full: str | None
    #: The value read, or the error that kept Redis from answering.
    value: bytes | redis.RedisError | None = None
    #: The slots held (``None`` when not sent, or when Redis was down and the caps open).
    hold: Slots | None = None


@contextmanager
def sending_slots(
    client: redis.Redis,
    settings: Settings,
    account_id: str,
    url: str,
    *,
    read: str | None = None,
    wait_seconds: float | None = None,
) -> Iterator[Gate]:
    """Yields a :class:`Gate` whose ``full`` is ``None`` while this delivery holds both
    slots (given back when the block ends), else why it may not send now. ``read`` is a
    key whose value comes back with the slots (``dedup``), in the same round trip."""
    ttl = redis_keys.DELIVERY_SLOT_TTL_SECONDS
    account_cap = settings.webhook_account_concurrency
    destination_cap = settings.webhook_destination_concurrency
    by_account = redis_keys.account_slots(account_id)
    by_destination = destination_key(account_id, url)
    keys, caps = [by_account, by_destination], [account_cap, destination_cap]
    wait = DESTINATION_WAIT_SECONDS if wait_seconds is None else wait_seconds
    deadline = time.monotonic() + wait
    while True:
        taking = slots_and_value(client, keys, caps, ttl, waited=[by_destination], read=read)
        with taking as (refused, value, hold):
            if refused == 0:
                yield Gate(None, value, hold)
                return
            if refused == 1:
                yield Gate(f"the account has {account_cap} webhooks in flight", value)
                return
            left = deadline - time.monotonic()
            if left <= 0:
                why = f"{destination_cap} webhooks to {destination_of(url)} in flight"
                yield Gate(why, value)
                return
        wait_for_free(client, by_destination, max(left, 0.01))  # 0 would block for ever
