"""How long to wait after a transient provider error before trying again."""

from __future__ import annotations

from backend.errors import ProviderTransient

#: Backoff never exceeds this many poll intervals (as on the product page).
MAX_BACKOFF_INTERVALS = 4


def transient_delay_seconds(
    interval_seconds: float, failures: int, error: ProviderTransient | None = None
) -> float:
    """Exponential in the number of consecutive failures, capped at 4x the poll interval;
    a provider's ``Retry-After`` is honoured within that cap."""
    cap = interval_seconds * MAX_BACKOFF_INTERVALS
    delay = min(interval_seconds * 2 ** (failures - 1), cap)
    if error is not None and error.retry_after_seconds is not None:
        delay = max(delay, min(error.retry_after_seconds, cap))
    return delay
