"""Provider health: the per-route circuit breaker in a real Redis, the scheduled probe
against the simulator's real dialects, and what ``genhook providers`` shows of both.

Time is driven by passing explicit ``now`` values, never by sleeping.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dramatiq
import pytest
import redis

from backend import redis_client, redis_keys
from backend.cli import main
from backend.context import Context, build_context
from backend.providers.health import HealthUnavailable, RouteHealth
from backend.providers.probe import probe_routes
from backend.scheduler import probe_once
from backend.settings import Settings, get_settings
from backend.simulator.credentials import provider_settings
from backend.store.types import utcnow
from tests.conftest import make_settings

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
#: Nothing listens here: a Redis or a provider "pointed at a closed port".
CLOSED = "127.0.0.1:1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def breaker_settings(**overrides: object) -> Settings:
    """The documented defaults, spelled out so each test's arithmetic can be read here."""
    values: dict[str, object] = {
        "provider_breaker_failures": 3,
        "provider_breaker_failure_rate": 0.5,
        "provider_breaker_window_seconds": 60,
        "provider_breaker_min_samples": 10,
        "provider_breaker_cooldown_seconds": 60,
        **overrides,
    }
    return Settings.model_validate(values)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def route(client: redis.Redis) -> Iterator[str]:
    """A route key of this test only; its keys are deleted afterwards."""
    key = f"test/{uuid.uuid4().hex[:8]}"
    yield key
    client.delete(redis_keys.route_health(key), redis_keys.route_outcomes(key))


@pytest.fixture
def health(client: redis.Redis) -> RouteHealth:
    return RouteHealth(client, breaker_settings())


def fail(health: RouteHealth, route: str, *seconds: float) -> None:
    for second in seconds:
        health.record_failure(route, "provider_unavailable", at(second))


def alternate(health: RouteHealth, route: str, seconds: range) -> None:
    """A failure at each even second, a success at each odd one."""
    for second in seconds:
        if second % 2:
            health.record_success(route, 0.1, at(second))
        else:
            fail(health, route, second)


# --- the breaker ---------------------------------------------------------------------------


def test_consecutive_failures_open_the_route_for_the_cooldown(
    health: RouteHealth, route: str
) -> None:
    # Given two failures in a row, the route is still used
    fail(health, route, 0, 1)
    assert health.cooling_down_until(route, at(1)) is None

    # When a third follows
    fail(health, route, 2)

    # Then routing must skip it for the cooldown, counted from that failure
    assert health.cooling_down_until(route, at(2)) == at(62)
    assert health.cooling_down_until(route, at(61.9)) == at(62)


def test_the_route_is_usable_again_when_the_cooldown_ends(health: RouteHealth, route: str) -> None:
    fail(health, route, 0, 1, 2)
    assert health.cooling_down_until(route, at(62)) is None


def test_a_failure_after_the_cooldown_opens_the_route_again_at_once(
    client: redis.Redis, route: str
) -> None:
    # Given a route opened by its failure rate (the consecutive rule set out of reach)
    health = RouteHealth(client, breaker_settings(provider_breaker_failures=100))
    alternate(health, route, range(1, 11))  # five failures of ten, the last at 10 s
    assert health.cooling_down_until(route, at(10)) == at(70)

    # When, once the cooldown and the window are over, its first call fails again
    fail(health, route, 71)

    # Then it cools down again, although neither rule alone would open it now
    assert health.cooling_down_until(route, at(71)) == at(131)


def test_a_success_closes_an_open_route(health: RouteHealth, route: str) -> None:
    # Given an open route
    fail(health, route, 0, 1, 2)

    # When a call on it succeeds (one that was already under way, say)
    health.record_success(route, 0.2, at(10))

    # Then it is usable again, and its count of failures starts over
    assert health.cooling_down_until(route, at(10)) is None
    fail(health, route, 11, 12)
    assert health.cooling_down_until(route, at(12)) is None


def test_a_success_after_the_cooldown_closes_the_route_for_good(
    health: RouteHealth, route: str
) -> None:
    fail(health, route, 0, 1, 2)
    health.record_success(route, 0.2, at(63))
    fail(health, route, 64)
    assert health.cooling_down_until(route, at(64)) is None


def test_the_failure_rate_opens_the_route_only_with_enough_calls(
    client: redis.Redis, route: str
) -> None:
    health = RouteHealth(client, breaker_settings(provider_breaker_failures=100))

    # Given nine calls, five of them failed: more than half, but too few calls to judge
    alternate(health, route, range(9))
    assert health.cooling_down_until(route, at(8)) is None

    # When a tenth call fails (six of ten)
    fail(health, route, 9)

    # Then the route opens
    assert health.cooling_down_until(route, at(9)) == at(69)


def test_a_failure_rate_below_the_threshold_keeps_the_route(
    client: redis.Redis, route: str
) -> None:
    health = RouteHealth(client, breaker_settings(provider_breaker_failures=100))
    for second in range(6):
        health.record_success(route, 0.1, at(second))
    fail(health, route, 6, 7, 8, 9)  # four of ten
    assert health.cooling_down_until(route, at(9)) is None


def test_failures_older_than_the_window_do_not_count_towards_the_rate(
    client: redis.Redis, route: str
) -> None:
    health = RouteHealth(client, breaker_settings(provider_breaker_failures=100))
    # Given nine failures, then a success, all a while ago
    fail(health, route, *range(9))
    health.record_success(route, 0.1, at(9))

    # When, past the window, nine successes and one failure follow
    for second in range(100, 109):
        health.record_success(route, 0.1, at(second))
    fail(health, route, 109)

    # Then the rate is one in ten, and the route stays
    assert health.cooling_down_until(route, at(109)) is None


def test_routes_are_independent(health: RouteHealth, route: str, client: redis.Redis) -> None:
    other = f"{route}-other"
    try:
        fail(health, route, 0, 1, 2)
        fail(health, other, 0, 1)
        assert health.cooling_down_until(route, at(3)) == at(62)
        assert health.cooling_down_until(other, at(3)) is None
    finally:
        client.delete(redis_keys.route_health(other), redis_keys.route_outcomes(other))


def test_every_worker_sees_and_feeds_the_same_breaker(redis_url: str, route: str) -> None:
    # Given two workers, each with its own connection
    worker_a = RouteHealth(redis_client.connect(redis_url), breaker_settings())
    worker_b = RouteHealth(redis_client.connect(redis_url), breaker_settings())

    # When one sees two failures and the other a third
    fail(worker_a, route, 0, 1)
    fail(worker_b, route, 2)

    # Then both skip the route
    assert worker_a.cooling_down_until(route, at(3)) == at(62)
    assert worker_b.cooling_down_until(route, at(3)) == at(62)


def test_without_redis_every_route_is_usable_and_the_outage_is_logged_once(
    health: RouteHealth, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a worker whose Redis answered a moment ago
    health.record_success(route, 0.1, at(0))
    down = RouteHealth(redis_client.connect(f"redis://{CLOSED}/0"), breaker_settings())

    # When Redis is gone, outcomes are dropped and routes stay usable, without an error
    with caplog.at_level(logging.DEBUG, logger="backend.providers.health"):
        fail(down, route, 1, 2, 3)
        down.record_success(route, 0.1, at(4))
        assert down.cooling_down_until(route, at(5)) is None

    # Then the operator was warned once, not once per call
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    with pytest.raises(HealthUnavailable):
        down.snapshot([route], at(5))


def test_a_snapshot_reports_recent_calls_and_the_last_error(
    health: RouteHealth, route: str
) -> None:
    # Given three successes of 0.1, 0.2 and 0.6 s and then three failures
    for second, latency in enumerate((0.1, 0.2, 0.6)):
        health.record_success(route, latency, at(second))
    for second in (3, 4, 5):
        health.record_failure(route, "auth_failed: Invalid API key", at(second))

    # When an operator looks
    (view,) = health.snapshot([route], at(6))

    # Then the route is cooling down and the numbers are those of the window
    assert view.cooling_until == at(65)
    assert view.consecutive_failures == 3
    assert (view.samples, view.success_rate) == (6, 0.5)
    assert view.latency_p50_seconds == pytest.approx(0.2)
    assert view.latency_mean_seconds == pytest.approx(0.3)
    assert view.last_error == "auth_failed: Invalid API key"
    assert "cooling down until 2030-01-01T12:01:05Z" in view.describe(at(6))


def test_a_quiet_route_has_no_success_rate(health: RouteHealth, route: str) -> None:
    health.record_success(route, 0.1, at(0))
    (view,) = health.snapshot([route], at(120))
    assert (view.samples, view.success_rate, view.latency_p50_seconds) == (0, None, None)
    assert view.healthy


def test_the_outcomes_kept_per_route_are_bounded_and_expire(
    health: RouteHealth, route: str, client: redis.Redis
) -> None:
    for i in range(redis_keys.ROUTE_OUTCOMES_MAX + 50):
        health.record_success(route, 0.1, at(i / 1000))
    assert client.zcard(redis_keys.route_outcomes(route)) == redis_keys.ROUTE_OUTCOMES_MAX
    assert 0 < client.ttl(redis_keys.route_outcomes(route)) <= 60 + 60
    assert client.ttl(redis_keys.route_health(route)) > 0


# --- the active probe ----------------------------------------------------------------------


@pytest.fixture
def probe_ctx(tmp_path: Path, redis_url: str, simulator: str) -> Iterator[Context]:
    """Kling aimed at the simulator, Luma with a wrong key, fal at a closed port; one
    failure opens a route, to show that a probe's failure counts like a request's."""
    aimed = provider_settings(simulator)
    settings = make_settings(
        f"sqlite:///{tmp_path / 'genhook.db'}",
        redis_url,
        simulator,
        **aimed["kling"],
        **{**aimed["luma"], "luma_api_key": "not-the-key"},
        **{**aimed["fal"], "fal_queue_url": f"http://{CLOSED}/fal"},
        provider_timeout_seconds=2.0,
        provider_breaker_failures=1,
    )
    redis.Redis.from_url(redis_url).flushdb()
    context = build_context(settings, broker=dramatiq.get_broker())
    yield context
    context.close()


def routes_of(ctx: Context, provider: str) -> list[str]:
    return [r.key for r in ctx.catalog.all_routes() if r.provider == provider]


def test_a_probe_records_each_providers_outcome_for_all_its_routes(probe_ctx: Context) -> None:
    # When the scheduler's probe runs
    results = {r.provider: r for r in probe_routes(probe_ctx)}

    # Then every enabled provider was called once, the native simulator too
    assert set(results) == {"kling", "luma", "fal", "simulator"}
    assert results["kling"].ok and results["simulator"].ok
    assert not results["luma"].ok and not results["fal"].ok

    # And each outcome was recorded for every route of that provider
    health = RouteHealth(probe_ctx.redis, probe_ctx.settings)
    now = probe_ctx.now()
    views = {
        v.route_key: v
        for v in health.snapshot([r.key for r in probe_ctx.catalog.all_routes()], now)
    }
    for key in routes_of(probe_ctx, "kling"):
        assert (views[key].healthy, views[key].success_rate) == (True, 1.0)
        assert views[key].latency_p50_seconds is not None
    failing = routes_of(probe_ctx, "luma") + routes_of(probe_ctx, "fal")
    assert len(failing) >= 3
    for key in failing:
        assert views[key].cooling_until is not None, key
        assert (views[key].last_error or "").startswith("probe: "), key


def test_the_scheduled_probe_waits_for_another_scheduler_probing(probe_ctx: Context) -> None:
    # Given another scheduler holding the probe's lock
    kling = routes_of(probe_ctx, "kling")[0]
    lock = probe_ctx.redis.lock(redis_keys.sweep_lock("provider-health"), timeout=30)
    assert lock.acquire(blocking=False)
    health = RouteHealth(probe_ctx.redis, probe_ctx.settings)

    # When this one's turn comes, it probes nothing
    probe_once(probe_ctx)
    assert health.snapshot([kling], probe_ctx.now())[0].samples == 0

    # And once the lock is free, it probes
    lock.release()
    probe_once(probe_ctx)
    assert health.snapshot([kling], probe_ctx.now())[0].samples == 1


# --- genhook providers ---------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, simulator: str, tmp_path: Path) -> Iterator[None]:
    """Only Kling configured, aimed at the simulator, the way an operator's shell would."""
    for name in [n for n in os.environ if n.startswith("GENHOOK_") and n != "GENHOOK_REDIS_URL"]:
        monkeypatch.delenv(name)
    for field, value in provider_settings(simulator)["kling"].items():
        monkeypatch.setenv(f"GENHOOK_{field.upper()}", value)
    monkeypatch.setenv("GENHOOK_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def route_line(output: str, route_key: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{route_key} "))


def test_providers_shows_a_cooling_down_route(
    cli_env: None, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given workers that saw kling/kling-v3 fail three times just now
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    health = RouteHealth(client, get_settings())
    for _ in range(3):
        health.record_failure("kling/kling-v3", "provider_unavailable: 503", utcnow())

    # When the operator checks the providers
    code = main(["providers"])
    out = capsys.readouterr().out

    # Then Kling's own probe passes, but its route is shown cooling down, with why
    assert code == 0
    assert out.splitlines()[0].split() == ["kling", "ok"]
    line = route_line(out, "kling/kling-v3")
    assert "enabled" in line and "ok " in line
    assert "cooling down until" in line and "provider_unavailable: 503" in line
    # And a route of an unconfigured provider is listed as such, healthy
    fal_line = route_line(out, "fal/fal-ai/kling-video/o3/pro/text-to-video")
    assert "not configured" in fal_line and "healthy" in fal_line


def test_providers_still_answers_when_redis_is_unreachable(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GENHOOK_REDIS_URL", f"redis://{CLOSED}/0")
    get_settings.cache_clear()

    code = main(["providers"])
    out = capsys.readouterr().out

    assert code == 0
    assert "health unknown (Redis unreachable)" in route_line(out, "kling/kling-v3")
