"""Counting hits against a :class:`Policy` in Redis, shared by every process.

The counting is the ``limits`` library's sliding-window counter (two counters per window,
the previous one weighted by how much of it still overlaps: no burst at a window's edge,
one small key per window), run for every window of a policy by one script
(``sliding_windows.lua``): one Redis round trip per request where the library's calls took
two per window, on genhook's own Redis client, so it inherits the short timeouts of
``backend/redis_client.py``. The library still parses the policies and names the keys.

When Redis cannot be reached the limiter **fails open**: the request is allowed, without
``RateLimit`` headers, one warning is logged, and Redis is not tried again for
``FAIL_OPEN_SECONDS`` so that requests do not each wait for its timeouts. Jobs in flight are
still capped (that cap lives in the database, ``backend/jobs/in_flight.py``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from importlib import resources

import redis
from limits import RateLimitItem

from backend import redis_keys
from backend.ratelimit.headers import RETRY_AFTER_HEADER, WindowState, rate_limit_headers
from backend.ratelimit.policy import Policy

log = logging.getLogger(__name__)

#: After a Redis error, limits are not enforced (nor Redis asked) for this long.
FAIL_OPEN_SECONDS = 5.0


@dataclass(frozen=True)
class Decision:
    """Whether a hit was allowed, and the state of each window of its policy."""

    allowed: bool
    windows: tuple[WindowState, ...] = ()
    #: Whole seconds to wait before trying again; 0 when allowed.
    retry_after_seconds: int = 0
    #: The window that refused (``read-1s``), for messages.
    refused_by: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def unlimited(cls) -> Decision:
        return cls(allowed=True)


_SCRIPT = (resources.files("backend.ratelimit") / "sliding_windows.lua").read_text()


def _window_state(
    policy: Policy,
    item: RateLimitItem,
    previous_count: int,
    previous_ttl_ms: int,
    current_count: int,
    current_ttl_ms: int,
) -> WindowState:
    """What is left of one window and when it next frees a hit, as the library's
    ``SlidingWindowCounterRateLimiter.get_window_stats`` computes them."""
    expiry = item.get_expiry()
    weighted = previous_count * (previous_ttl_ms / 1000) / expiry + current_count
    reset = 0.0
    if previous_count or current_count:
        previous_reset = current_reset = math.inf
        if previous_count:
            previous_reset = (previous_ttl_ms / 1000) % (expiry / previous_count)
        if current_count:
            current_reset = (current_ttl_ms / 1000) % expiry
        reset = min(previous_reset, current_reset)
    remaining = max(0, item.amount - math.floor(weighted))
    if reset <= 0 and remaining < item.amount:
        # A window opened this very millisecond: its counter's TTL is exactly two windows,
        # which the modulo reads as 0 instead of a whole window.
        reset = expiry
    return WindowState(
        name=policy.window_name(item),
        quota=item.amount,
        window_seconds=expiry,
        remaining=remaining,
        reset_seconds=max(0, math.ceil(reset)),
    )


class Limiter:
    """Hits and checks against policies, keyed by (policy name, identity)."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_SCRIPT)
        self._skip_until = 0.0
        self._lock = threading.Lock()

    def hit(self, policy: Policy, identity: str, *, cost: int = 1) -> Decision:
        """Count ``cost`` against every window of ``policy``, shortest first, stopping at
        the first that refuses (the longer ones are then not counted)."""
        return self._decide(policy, identity, cost, count=True)

    def room(self, policy: Policy, identity: str) -> Decision:
        """Whether one more hit would be allowed now, counting nothing."""
        return self._decide(policy, identity, 1, count=False)

    def _decide(self, policy: Policy, identity: str, cost: int, *, count: bool) -> Decision:
        if not policy.enabled or self._failing_open():
            return Decision.unlimited()
        try:
            return self._count(policy, identity, cost, count=count)
        except redis.RedisError as exc:
            self._fail_open(policy, exc)
            return Decision.unlimited()

    def _count(self, policy: Policy, identity: str, cost: int, *, count: bool) -> Decision:
        keys: list[str] = []
        args: list[int] = [cost, 1 if count else 0]
        for item in policy.items:
            key = f"{redis_keys.RATE_LIMIT_PREFIX}:{item.key_for(policy.name, identity)}"
            keys += [f"{key}/-1", key]
            args += [item.amount, item.get_expiry()]
        answers = self._script(keys=keys, args=args)
        windows: list[WindowState] = []
        refused: WindowState | None = None
        for item, (allowed, *counters) in zip(policy.items, answers, strict=True):
            state = _window_state(policy, item, *(int(c) for c in counters))
            windows.append(state)
            if refused is None and not allowed:
                refused = state
        headers = rate_limit_headers(windows)
        if refused is None:
            return Decision(allowed=True, windows=tuple(windows), headers=headers)
        retry_after = max(1, refused.reset_seconds)
        headers[RETRY_AFTER_HEADER] = str(retry_after)
        return Decision(
            allowed=False,
            windows=tuple(windows),
            retry_after_seconds=retry_after,
            refused_by=refused.name,
            headers=headers,
        )

    def _failing_open(self) -> bool:
        return time.monotonic() < self._skip_until

    def _fail_open(self, policy: Policy, exc: Exception) -> None:
        with self._lock:
            if self._failing_open():
                return
            self._skip_until = time.monotonic() + FAIL_OPEN_SECONDS
        log.warning(
            "rate limits not enforced for %g s (failing open): Redis unavailable while "
            "counting %r: %s",
            FAIL_OPEN_SECONDS,
            policy.name,
            exc,
        )
