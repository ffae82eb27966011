"""When to try a webhook again: the retry schedule and the receiver's ``Retry-After``.

A schedule lists the delay before each attempt: ``[0, 5, 30]`` sends at once, then 5 s
after the first failure, then 30 s after the second, and gives up after three attempts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings import this module to validate the schedule setting
    from backend.settings import Settings
    from backend.store.endpoints import EndpointRecord

MAX_ATTEMPTS = 20
#: Longest timeout of one attempt (server default or an endpoint's own).
MAX_TIMEOUT_SECONDS = 60.0
#: Longest single delay; a delayed Dramatiq message waits in a worker, and the recovery
#: sweep re-sends any that a restart loses.
MAX_DELAY_SECONDS = 24 * 3600.0
#: Status codes whose ``Retry-After`` is honoured.
RETRY_AFTER_STATUSES = (429, 503)


def validate_schedule(schedule: Sequence[float]) -> list[float]:
    """``schedule`` as a list, or ``ValueError`` saying what is wrong with it."""
    if not 1 <= len(schedule) <= MAX_ATTEMPTS:
        raise ValueError(f"needs 1 to {MAX_ATTEMPTS} delays (one per attempt)")
    for delay in schedule:
        if not 0 <= delay <= MAX_DELAY_SECONDS:
            raise ValueError(f"each delay must be between 0 s and {MAX_DELAY_SECONDS:g} s")
    return list(schedule)


def next_delay(
    schedule: Sequence[float], attempts_made: int, retry_after: float | None
) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failures, or ``None`` when the
    schedule is used up. A ``Retry-After`` can only lengthen the wait, up to the schedule's
    longest delay: the receiver is asked for patience, not allowed to stall us for days."""
    if attempts_made >= len(schedule):
        return None
    delay = schedule[attempts_made]
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(schedule)))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from ``now`` named by a ``Retry-After`` header (delay-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class DeliveryPolicy:
    """How one destination is tried: its retry schedule and per-attempt timeout."""

    schedule: list[float]
    timeout_seconds: float


def policy_for(settings: Settings, endpoint: EndpointRecord | None) -> DeliveryPolicy:
    """The endpoint's own schedule and timeout where it set them, else the server's."""
    schedule = settings.webhook_retry_schedule
    timeout = settings.webhook_timeout_seconds
    if endpoint is not None:
        schedule = endpoint.retry_schedule or schedule
        timeout = endpoint.timeout_seconds or timeout
    return DeliveryPolicy(list(schedule), timeout)
