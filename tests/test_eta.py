"""Render-time history (real Redis), ETA estimates and adaptive poll delays."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
import redis

from backend import redis_client, redis_keys
from backend.jobs.eta import (
    backstop_delay_seconds,
    estimate_eta_seconds,
    next_poll_delay_seconds,
)
from backend.render_history import READ_CACHE_SECONDS, RenderHistory

ROUTE = "kling/kling-v3"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def model(client: redis.Redis) -> Iterator[str]:
    """A model name of this test only; its history keys are deleted afterwards."""
    name = f"test-eta-{uuid.uuid4().hex[:8]}"
    yield name
    keys = list(client.scan_iter(redis_keys.render_history(name, "*")))
    if keys:
        client.delete(*keys)


@pytest.fixture
def history(client: redis.Redis) -> RenderHistory:
    return RenderHistory(client)


# --- RenderHistory -------------------------------------------------------------------------


def test_without_renders_the_catalog_typical_time_is_expected(
    history: RenderHistory, model: str
) -> None:
    assert history.expected_seconds(model, ROUTE, typical_seconds=90) == 90


def test_observed_durations_pull_the_estimate_towards_them(
    history: RenderHistory, model: str
) -> None:
    # Given a model the catalog thinks takes 90 s, whose renders really take 150 s
    history.record(model, ROUTE, 150)
    after_one = history.expected_seconds(model, ROUTE, typical_seconds=90)
    for _ in range(19):
        history.record(model, ROUTE, 150)
    after_twenty = history.expected_seconds(model, ROUTE, typical_seconds=90)

    # Then one render only blends with the catalog, twenty nearly replace it
    assert 90 < after_one < 120
    assert 140 < after_twenty <= 150


def test_one_outlier_moves_the_estimate_only_a_little(history: RenderHistory, model: str) -> None:
    # Given twenty renders of 100 s
    for _ in range(20):
        history.record(model, ROUTE, 100)

    # When one render takes ten times as long
    history.record(model, ROUTE, 1000)

    # Then the estimate moves, but by far less than the outlier's pull
    assert 100 < history.expected_seconds(model, ROUTE, typical_seconds=100) < 115


def test_a_lasting_slowdown_is_followed_despite_the_outlier_clamp(
    history: RenderHistory, model: str
) -> None:
    for _ in range(20):
        history.record(model, ROUTE, 100)
    for _ in range(20):
        history.record(model, ROUTE, 200)
    assert history.expected_seconds(model, ROUTE, typical_seconds=100) > 180


def test_each_model_and_each_route_has_its_own_history(history: RenderHistory, model: str) -> None:
    other_model = f"{model}-other"
    history.record(model, ROUTE, 300)
    try:
        assert history.expected_seconds(model, "fal/kling-v3", typical_seconds=60) == 60
        assert history.expected_seconds(other_model, ROUTE, typical_seconds=60) == 60
        assert history.expected_seconds(model, ROUTE, typical_seconds=60) > 60
    finally:
        history.client.delete(redis_keys.render_history(other_model, ROUTE))


@pytest.mark.parametrize("seconds", [0, -5, 2 * 24 * 3600, float("nan"), float("inf")])
def test_nonsense_durations_are_ignored(
    history: RenderHistory, model: str, client: redis.Redis, seconds: float
) -> None:
    history.record(model, ROUTE, seconds)
    assert not client.exists(redis_keys.render_history(model, ROUTE))
    assert history.expected_seconds(model, ROUTE, typical_seconds=90) == 90


def test_the_history_expires_when_a_route_goes_unused(
    history: RenderHistory, model: str, client: redis.Redis
) -> None:
    history.record(model, ROUTE, 100)
    ttl = client.ttl(redis_keys.render_history(model, ROUTE))
    assert redis_keys.RENDER_HISTORY_TTL_SECONDS - 60 < ttl <= redis_keys.RENDER_HISTORY_TTL_SECONDS


def test_with_redis_down_the_catalog_time_is_used_and_recording_is_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a history whose Redis refuses connections
    history = RenderHistory(redis_client.connect("redis://127.0.0.1:1"))

    with caplog.at_level(logging.DEBUG, logger="backend.render_history"):
        # When a render is recorded and estimates are asked for
        history.record("kling-v3", ROUTE, 100)
        first = history.expected_seconds("kling-v3", ROUTE, typical_seconds=90)
        second = history.expected_seconds("kling-v3", ROUTE, typical_seconds=90)

    # Then nothing raises, the catalog's time is used, and the outage is warned about once
    assert first == second == 90
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


# --- ETA estimates -------------------------------------------------------------------------


def test_the_providers_own_eta_wins() -> None:
    eta = estimate_eta_seconds(expected_total=90, elapsed=10, progress=50, provider_eta=42)
    assert eta == 42


def test_without_progress_the_eta_is_what_the_history_leaves() -> None:
    eta = estimate_eta_seconds(expected_total=90, elapsed=30, progress=None, provider_eta=None)
    assert eta == 60


def test_late_progress_outweighs_the_history() -> None:
    # Given a render expected to take 300 s that is 90 % done after 100 s
    eta = estimate_eta_seconds(expected_total=300, elapsed=100, progress=90, provider_eta=None)
    # Then its pace (about 11 s left) counts far more than the history's 200 s
    assert 11 < eta < 40


def test_early_progress_is_taken_with_caution() -> None:
    # Given a render 2 % done after 10 s (its pace alone says 490 s) expected to take 90 s
    eta = estimate_eta_seconds(expected_total=90, elapsed=10, progress=2, provider_eta=None)
    # Then the estimate stays close to the history's 80 s
    assert 80 < eta < 100


def test_an_overdue_render_keeps_a_positive_growing_eta() -> None:
    late = estimate_eta_seconds(expected_total=90, elapsed=120, progress=None, provider_eta=None)
    later = estimate_eta_seconds(expected_total=90, elapsed=600, progress=None, provider_eta=None)
    assert 0 < late < later


@pytest.mark.parametrize(
    ("elapsed", "progress", "provider_eta"),
    [(-5, None, None), (500, None, None), (500, 99.9, None), (0, 50, None), (10, None, -3)],
)
def test_the_eta_is_never_negative(
    elapsed: float, progress: float | None, provider_eta: float | None
) -> None:
    eta = estimate_eta_seconds(
        expected_total=90, elapsed=elapsed, progress=progress, provider_eta=provider_eta
    )
    assert eta >= 0


# --- Poll delays ---------------------------------------------------------------------------


def _delay(*, expected_total: float, elapsed: float, eta: float | None = None) -> float:
    return next_poll_delay_seconds(
        expected_total=expected_total, elapsed=elapsed, eta=eta, min_interval=5, max_interval=60
    )


def test_far_from_the_end_polls_wait_long() -> None:
    assert _delay(expected_total=300, elapsed=0) == 60
    assert _delay(expected_total=300, elapsed=220) == 40


def test_near_the_expected_end_polls_come_at_the_minimum_interval() -> None:
    assert _delay(expected_total=300, elapsed=295) == 5
    assert _delay(expected_total=300, elapsed=305) == 5


def test_a_near_provider_eta_brings_the_next_poll_forward() -> None:
    assert _delay(expected_total=300, elapsed=60, eta=12) == 6


@pytest.mark.parametrize("elapsed", [-10, 0, 100, 299.9, 300, 301, 1000, 10**6])
@pytest.mark.parametrize("eta", [None, 0, 3, 1000])
def test_poll_delays_stay_within_the_routes_bounds(elapsed: float, eta: float | None) -> None:
    assert 5 <= _delay(expected_total=300, elapsed=elapsed, eta=eta) <= 60


def test_the_routes_minimum_wins_over_a_smaller_maximum() -> None:
    delay = next_poll_delay_seconds(
        expected_total=300, elapsed=0, eta=None, min_interval=5, max_interval=2
    )
    assert delay == 5


def _render(*, expected: float, actual: float, reports_progress: bool = False) -> tuple[int, float]:
    """Poll a render of ``actual`` seconds as the poll step would: (polls, lag after its end)."""
    elapsed, polls = 0.0, 0
    while True:
        polls += 1
        if elapsed >= actual:
            return polls, elapsed - actual
        progress = 100 * elapsed / actual if reports_progress else None
        eta = estimate_eta_seconds(
            expected_total=expected, elapsed=elapsed, progress=progress, provider_eta=None
        )
        elapsed += _delay(expected_total=expected, elapsed=elapsed, eta=eta)


def test_a_render_on_time_costs_few_polls_and_is_seen_within_the_minimum_interval() -> None:
    polls, lag = _render(expected=300, actual=300)
    # Polling every 5 s would take 60 polls
    assert polls <= 12
    assert lag <= 5


def test_a_render_faster_than_its_history_is_seen_at_once_when_it_reports_progress() -> None:
    polls, lag = _render(expected=300, actual=200, reports_progress=True)
    assert polls <= 8
    assert lag <= 5


def test_a_late_render_is_seen_within_a_quarter_of_its_lateness() -> None:
    polls, lag = _render(expected=300, actual=450)
    assert polls <= 30
    assert lag <= 0.25 * 150


def test_a_render_still_running_at_100_percent_is_polled_again_at_the_route_minimum() -> None:
    # Runway rounds progress: 100 % can come a moment before SUCCEEDED
    eta = estimate_eta_seconds(expected_total=90, elapsed=40, progress=100.0, provider_eta=None)
    delay = next_poll_delay_seconds(
        expected_total=90, elapsed=40, eta=eta, min_interval=5, max_interval=30
    )

    assert eta == 0.0 and delay == 5


def test_with_callbacks_the_backstop_comes_after_the_expected_end_within_its_bounds() -> None:
    # A render expected in 10 s: one backstop 15 s after that, not polls near the end
    assert backstop_delay_seconds(eta=10, backstop=15, min_interval=2) == 25
    # ...at least a backstop apart once the end is due, and the route's minimum wins
    assert backstop_delay_seconds(eta=0, backstop=15, min_interval=2) == 15
    assert backstop_delay_seconds(eta=0, backstop=1, min_interval=5) == 5
    # ...and never longer than 2 backstops, so a lost callback is made up for soon
    assert backstop_delay_seconds(eta=3600, backstop=15, min_interval=2) == 30


def test_a_process_rereads_a_routes_history_only_every_few_seconds(
    model: str, client: redis.Redis
) -> None:
    # Given a history read once, by a process whose clock is ours
    now = [1000.0]
    history = RenderHistory(client, clock=lambda: now[0])
    other_process = RenderHistory(client)
    assert history.expected_seconds(model, ROUTE, typical_seconds=90) == 90

    # When another process records renders
    for _ in range(5):
        other_process.record(model, ROUTE, 30)

    # Then this one keeps what it read for a few seconds (every poll needs it)...
    assert history.expected_seconds(model, ROUTE, typical_seconds=90) == 90
    # ...and reads it again after that
    now[0] += READ_CACHE_SECONDS
    assert history.expected_seconds(model, ROUTE, typical_seconds=90) < 90


def test_a_process_sees_its_own_samples_at_once(model: str, client: redis.Redis) -> None:
    history = RenderHistory(client, clock=lambda: 1000.0)
    assert history.expected_seconds(model, ROUTE, typical_seconds=90) == 90
    history.record(model, ROUTE, 30)
    assert history.expected_seconds(model, ROUTE, typical_seconds=90) < 90
