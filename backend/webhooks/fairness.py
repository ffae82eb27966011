"""Whether a webhook may be sent now: per-account and per-destination concurrency caps.

A receiver that accepts connections and never answers holds a delivery thread for the
whole webhook timeout. Without a cap, one account pointing many endpoints at such servers
would hold every thread of the delivery pool, and every other account's webhooks would
wait behind it (issue 11, finding 2). So a delivery takes two slots before it sends: one of
its account's ``webhook_account_concurrency`` and one of the
``webhook_destination_concurrency`` of that account's destination (``host:port``). A
delivery that finds either cap full sends nothing and comes back later (``deliver.py``),
leaving its thread to another account.

Destinations are counted per account: tenants that share a big receiver (a no-code
platform's webhook host) never share its slots, so one cannot use up another's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import redis

from backend import redis_keys
from backend.settings import Settings
from backend.slots import slot

_DEFAULT_PORTS = {"http": 80, "https": 443}


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


@contextmanager
def sending_slots(
    client: redis.Redis, settings: Settings, account_id: str, url: str
) -> Iterator[str | None]:
    """Yields ``None`` while this delivery holds both slots (given back when the block
    ends), else why it may not send now."""
    ttl = redis_keys.DELIVERY_SLOT_TTL_SECONDS
    account_cap = settings.webhook_account_concurrency
    destination_cap = settings.webhook_destination_concurrency
    with slot(client, redis_keys.account_slots(account_id), account_cap, ttl) as by_account:
        if not by_account:
            yield f"the account has {account_cap} webhooks in flight"
            return
        with slot(client, destination_key(account_id, url), destination_cap, ttl) as by_dest:
            if not by_dest:
                yield f"{destination_cap} webhooks to {destination_of(url)} in flight"
                return
            yield None
