"""The IETF ``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers,
revisions 08 to 11: structured-field lists, one item per window).

    RateLimit-Policy: "read-1s";q=50;w=1, "read-60s";q=1200;w=60
    RateLimit: "read-1s";r=49;t=1, "read-60s";r=1187;t=4

``q`` is the window's quota, ``w`` its length in seconds, ``r`` what remains of it and ``t``
the seconds until more becomes available. A 429 adds ``Retry-After`` (whole seconds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

POLICY_HEADER = "RateLimit-Policy"
STATE_HEADER = "RateLimit"
RETRY_AFTER_HEADER = "Retry-After"


@dataclass(frozen=True)
class WindowState:
    """One window of a policy, as counted just now."""

    name: str
    quota: int
    window_seconds: int
    remaining: int
    reset_seconds: int


def rate_limit_headers(windows: Iterable[WindowState]) -> dict[str, str]:
    windows = list(windows)
    if not windows:
        return {}
    return {
        POLICY_HEADER: ", ".join(f'"{w.name}";q={w.quota};w={w.window_seconds}' for w in windows),
        STATE_HEADER: ", ".join(f'"{w.name}";r={w.remaining};t={w.reset_seconds}' for w in windows),
    }
