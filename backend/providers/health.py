"""Provider health: a circuit breaker per route, shared by every worker through Redis.

A provider that is down, out of capacity or refusing our key makes every job routed to it
wait out retries before failing over. The breaker remembers what recent calls learned, so
routing can skip a route that is failing instead of re-learning it job by job (the idea of
LiteLLM's deployment cooldowns):

- **closed**: the route is used. Each call's outcome is recorded. It **opens** after
  ``provider_breaker_failures`` consecutive failures, or when at least
  ``provider_breaker_failure_rate`` of the calls in the last
  ``provider_breaker_window_seconds`` failed (once the window holds
  ``provider_breaker_min_samples`` calls).
- **open**: routing skips the route until ``provider_breaker_cooldown_seconds`` have passed.
- **half-open**: after the cooldown the route is usable again; the next success closes it,
  the next failure opens it again at once.

A success always closes the breaker. Calls are submissions, polls and the scheduler's
probe (``backend/providers/probe.py``); which outcomes count is the caller's business.

Best effort, like the status cache: when Redis is away no route is skipped and outcomes are
dropped, never an error. The keys and their TTLs are described in ``backend/redis_keys.py``;
each record is one atomic Lua script (``route_health.lua``).
"""

from __future__ import annotations

import logging
import math
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import redis

from backend import redis_keys
from backend.errors import GenhookError
from backend.settings import Settings

log = logging.getLogger(__name__)

_SCRIPT = resources.files("backend.providers").joinpath("route_health.lua").read_text()

#: Longest failure reason kept in Redis; error messages can quote whole answers.
MAX_REASON_CHARS = 300


class HealthUnavailable(GenhookError):
    """Route health cannot be read because Redis is unreachable; health is unknown."""


@dataclass(frozen=True)
class RouteHealthView:
    """What is known of one route's health at one moment, for operators."""

    route_key: str
    #: When the open breaker lets the route be used again; None when it is usable now.
    cooling_until: datetime | None
    consecutive_failures: int
    #: Share of successful calls in the window; None when the window holds no calls.
    success_rate: float | None
    #: Calls in the window, and the median and mean latency of those that were timed.
    samples: int
    latency_p50_seconds: float | None
    latency_mean_seconds: float | None
    window_seconds: float
    last_error: str | None
    last_error_at: datetime | None

    @property
    def healthy(self) -> bool:
        return self.cooling_until is None

    def describe(self, now: datetime) -> str:
        """One line for ``genhook providers``: the breaker's state, then recent calls."""
        if self.cooling_until is None:
            state = "healthy"
        else:
            left = (self.cooling_until - now).total_seconds()
            state = f"cooling down until {_clock(self.cooling_until)} ({left:.0f}s left)"
        if self.success_rate is None:
            recent = f"no calls in the last {self.window_seconds:g}s"
        else:
            recent = f"{self.success_rate:.0%} ok of {self.samples} in {self.window_seconds:g}s"
            if self.latency_p50_seconds is not None:
                recent += f", p50 {_ms(self.latency_p50_seconds)}"
                recent += f" mean {_ms(self.latency_mean_seconds or 0.0)}"
        parts = [state, recent]
        if self.consecutive_failures:
            parts.append(f"{self.consecutive_failures} failed in a row")
        if self.last_error and (self.consecutive_failures or not self.healthy):
            parts.append(f"last error: {self.last_error}")
        return "; ".join(parts)


class RouteHealth:
    """The breaker of every route, kept in Redis so that every worker sees the same."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.failures = settings.provider_breaker_failures
        self.failure_rate = settings.provider_breaker_failure_rate
        self.window_seconds = settings.provider_breaker_window_seconds
        self.min_samples = settings.provider_breaker_min_samples
        self.cooldown_seconds = settings.provider_breaker_cooldown_seconds
        self._record = client.register_script(_SCRIPT)

    def record_success(self, route_key: str, latency_seconds: float, now: datetime) -> None:
        """A call on the route worked (``latency_seconds`` is its duration); closes it."""
        self._write(route_key, "ok", latency_seconds, "", now)

    def record_failure(
        self,
        route_key: str,
        reason: str,
        now: datetime,
        latency_seconds: float | None = None,
    ) -> None:
        """A call on the route failed for the provider's sake; may open the route.

        ``reason`` is short and shown to operators (e.g. a ``ProviderError``'s code)."""
        self._write(route_key, "fail", latency_seconds, reason[:MAX_REASON_CHARS], now)

    def cooling_down_until(self, route_key: str, now: datetime) -> datetime | None:
        """Until when routing must skip the route; None when it may be used (or Redis is
        unreachable: an outage of Redis must not stop every route)."""
        try:
            raw = self.client.hget(redis_keys.route_health(route_key), "cooling_until")
        except redis.RedisError as exc:
            _outage(f"health of route {route_key} unknown; treating it as usable", exc)
            return None
        _recovered()
        until = _epoch(raw)
        return until if until is not None and now < until else None

    def snapshot(self, route_keys: Sequence[str], now: datetime) -> list[RouteHealthView]:
        """Every route's health at ``now``, in the order given.

        Raises :class:`HealthUnavailable` when Redis cannot be read."""
        window_start = now.timestamp() - self.window_seconds
        pipe = self.client.pipeline(transaction=False)
        for key in route_keys:
            pipe.hmget(
                redis_keys.route_health(key),
                ["cooling_until", "consecutive_failures", "last_error", "last_error_at"],
            )
            pipe.zrangebyscore(redis_keys.route_outcomes(key), f"({window_start}", "+inf")
        try:
            answers = pipe.execute()
        except redis.RedisError as exc:
            log.debug("route health unreadable: %s", exc)
            raise HealthUnavailable("Redis unreachable") from exc
        return [
            self._view(key, answers[2 * i], answers[2 * i + 1], now)
            for i, key in enumerate(route_keys)
        ]

    def _write(
        self, route_key: str, outcome: str, latency: float | None, reason: str, now: datetime
    ) -> None:
        if latency is not None and not (math.isfinite(latency) and latency >= 0):
            latency = None
        member = f"{outcome}:{'' if latency is None else f'{latency:.6f}'}:{uuid.uuid4().hex}"
        state_ttl = max(
            redis_keys.ROUTE_HEALTH_TTL_SECONDS,
            math.ceil(self.cooldown_seconds + self.window_seconds),
        )
        outcomes_ttl = math.ceil(self.window_seconds) + redis_keys.ROUTE_OUTCOMES_TTL_SLACK_SECONDS
        args: list[str | int | float] = [
            f"{now.timestamp():.6f}",
            outcome,
            member,
            reason,
            self.failures,
            self.failure_rate,
            self.window_seconds,
            self.min_samples,
            self.cooldown_seconds,
            redis_keys.ROUTE_OUTCOMES_MAX,
            outcomes_ttl,
            state_ttl,
        ]
        keys = [redis_keys.route_health(route_key), redis_keys.route_outcomes(route_key)]
        try:
            opened, until = self._record(keys=keys, args=args)
        except redis.RedisError as exc:
            _outage(f"{outcome} of route {route_key} not recorded", exc)
            return
        _recovered()
        if opened:
            log.warning(
                "route %s is cooling down until %s (last error: %s)",
                route_key,
                _clock(_epoch(until) or now),
                reason,
            )

    def _view(
        self, key: str, state: list[bytes | None], members: list[bytes], now: datetime
    ) -> RouteHealthView:
        raw_until, raw_failures, raw_error, raw_error_at = state
        until = _epoch(raw_until)
        outcomes = [_outcome(m) for m in members]
        latencies = [latency for _, latency in outcomes if latency is not None]
        return RouteHealthView(
            route_key=key,
            cooling_until=until if until is not None and now < until else None,
            consecutive_failures=int(raw_failures or 0),
            success_rate=(sum(ok for ok, _ in outcomes) / len(outcomes) if outcomes else None),
            samples=len(outcomes),
            latency_p50_seconds=statistics.median(latencies) if latencies else None,
            latency_mean_seconds=statistics.fmean(latencies) if latencies else None,
            window_seconds=self.window_seconds,
            last_error=raw_error.decode() if raw_error else None,
            last_error_at=_epoch(raw_error_at),
        )


def _outcome(member: bytes) -> tuple[bool, float | None]:
    """(succeeded, latency) from a member ``"ok|fail:{latency}:{nonce}"``."""
    outcome, latency, _ = member.decode().split(":", 2)
    return outcome == "ok", float(latency) if latency else None


def _epoch(raw: bytes | str | None) -> datetime | None:
    if not raw:
        return None
    return datetime.fromtimestamp(float(raw), UTC)


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


#: Whether the current Redis outage was already logged at warning level (per process).
_outage_logged = False


def _outage(what: str, exc: redis.RedisError) -> None:
    """Warn once per outage; every routing decision would otherwise repeat it."""
    global _outage_logged
    log.log(logging.DEBUG if _outage_logged else logging.WARNING, "%s (%s)", what, exc)
    _outage_logged = True


def _recovered() -> None:
    global _outage_logged
    _outage_logged = False
