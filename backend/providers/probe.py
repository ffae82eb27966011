"""The active probe: each enabled provider's cheap health call, counted for its routes.

Passive health only learns from jobs, so a route nobody uses (a fallback, a quiet night)
could be broken for hours unseen, and a route that opened stays unused and so never shows
it recovered. The scheduler (``backend/scheduler.py``) runs :func:`probe_routes` every
``provider_health_interval_seconds``: one ``health()`` call per provider, whose outcome is
recorded like a real call's for every catalog route of that provider. ``genhook providers``
uses :func:`probe` to show the same check to an operator without recording it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.catalog import Route
from backend.errors import ProviderError
from backend.providers.base import Provider
from backend.providers.health import RouteHealth

if TYPE_CHECKING:  # the context wires providers, so it must not be imported back from here
    from backend.context import Context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    """One provider's health call: how it went, how long it took, which routes it speaks for."""

    provider: str
    ok: bool
    latency_seconds: float
    #: The ``ProviderError`` as ``"code: message"`` when the call failed.
    error: str | None = None
    route_keys: tuple[str, ...] = ()


def probe(provider: Provider, route_keys: Sequence[str] = ()) -> ProbeResult:
    """Call ``provider.health()`` once and time it; a ``ProviderError`` is a failed probe."""
    started = time.monotonic()
    try:
        provider.health()
    except ProviderError as exc:
        elapsed = time.monotonic() - started
        return ProbeResult(provider.name, False, elapsed, str(exc), tuple(route_keys))
    return ProbeResult(provider.name, True, time.monotonic() - started, None, tuple(route_keys))


def probe_routes(ctx: Context, health: RouteHealth | None = None) -> list[ProbeResult]:
    """Probe every enabled provider once and record the outcome for each of its routes.

    A failed probe counts like a failed request, so it can open a route; a passing one
    closes it. An adapter that raises anything but a ``ProviderError`` is a bug, not an
    outage: it is logged and its routes are left as they were.
    """
    health = health or ctx.health
    routes = ctx.catalog.all_routes()
    results: list[ProbeResult] = []
    for name, provider in ctx.providers.items():
        keys = [route.key for route in routes if route.provider == name]
        try:
            result = probe(provider, keys)
        except Exception:
            log.exception("health probe of %s failed unexpectedly; its routes are unchanged", name)
            continue
        now = ctx.now()
        for key in keys:
            if result.ok:
                health.record_success(key, result.latency_seconds, now)
            else:
                reason = f"probe: {result.error}"
                health.record_failure(key, reason, now, latency_seconds=result.latency_seconds)
        if not result.ok:
            log.warning("health probe of %s failed: %s", name, result.error)
        results.append(result)
    return results


def route_lines(
    routes: Sequence[Route], probes: Mapping[str, ProbeResult], health: Mapping[str, str]
) -> list[str]:
    """The table ``genhook providers`` prints: per route, whether its provider is enabled,
    how its probe went just now, what a second of video costs there (the catalog's
    ``cost_per_second``, for the operator's eyes only) and ``health[route.key]`` (what
    Redis says)."""
    width = max((len(route.key) for route in routes), default=5)
    lines = [f"{'ROUTE':<{width}}  {'PROVIDER':<14}  {'PROBE':<12}  {'COST/S':<8}  HEALTH"]
    for route in routes:
        result = probes.get(route.provider)
        if result is None:
            enabled, probed = "not configured", "-"
        else:
            enabled = "enabled"
            probed = f"ok {result.latency_seconds * 1000:.0f}ms" if result.ok else "FAILED"
        cost = "-" if route.cost_per_second is None else f"{route.cost_per_second:g}"
        lines.append(
            f"{route.key:<{width}}  {enabled:<14}  {probed:<12}  {cost:<8}  "
            f"{health.get(route.key, '-')}"
        )
    return lines
