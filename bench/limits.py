"""Rate limits and quotas far out of reach, for benchmarks that drive one account hard.

genhook's defaults (``backend/settings.py``) cap one account at 20 writes a second and 50
jobs in flight: right for a tenant, wrong for a benchmark of the gateway itself. These values
keep the limits counted (their cost is part of what is measured) but never reached.
"""

from __future__ import annotations

#: As ``Settings`` fields.
GENEROUS_LIMITS: dict[str, object] = {
    "rate_limit_reads": "1000000/second",
    "rate_limit_writes": "1000000/second",
    "max_jobs_in_flight": 10_000_000,
    "quota_deliveries": "100000000/hour",
    "quota_redeliveries": "100000000/hour",
    "quota_recovers": "100000000/hour",
    "signup_limit_per_address": "100000000/hour",
    "signup_limit_per_domain": "100000000/hour",
    # wrk -c32 holds 32 connections from one address; 0 turns the per-client cap off.
    "api_max_connections_per_client": 0,
}

#: The same, as ``GENHOOK_*`` environment variables for processes the benchmark starts.
GENEROUS_LIMITS_ENV = {f"GENHOOK_{k.upper()}": str(v) for k, v in GENEROUS_LIMITS.items()}
