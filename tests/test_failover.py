"""Failover along a job's route plan, through the real adapters and the simulator's
provider dialects, with the account's balance and ledger checked after every scenario.

The shipped catalog's chains used here:
  kling-v3 (3 credits):  kling/kling-v3, fal/kling v3, then seedance-1-pro (2): byteplus,
                         replicate; then kling-o3-pro (5): fal
  seedance-1-pro (2):    byteplus, replicate, then wan-2.5 (2): replicate; then kling-v3 (3)
"""

from __future__ import annotations

import pytest
from falcon import testing

from backend.accounts import NewAccount
from backend.context import Context
from backend.providers.health import RouteHealth
from backend.settings import Settings
from backend.simulator.credentials import all_provider_settings
from tests.conftest import make_settings
from tests.support.api import submit, wait_for_status
from tests.support.faults import inject_fault, renders
from tests.support.ledger import balance, ledger, task_states

pytestmark = pytest.mark.usefixtures("worker")

START = 100


@pytest.fixture
def settings(database_url: str, redis_url: str, simulator: str) -> Settings:
    """Every provider enabled against its dialect; no native fallback; two rounds at most."""
    return make_settings(
        database_url,
        redis_url,
        simulator,
        simulator_fallback=False,
        provider_timeout_seconds=1.0,
        poll_max_transient_failures=1,
        signup_credits=START,
        **all_provider_settings(simulator),
    )


def hops(job: dict) -> list[tuple[str, int, str, str]]:
    """The routing events of a job's status chain: (event, route index, model, reason)."""
    return [
        (e["event"], e["route_index"], e["model"], e["reason"])
        for e in job["status_chain"]
        if e.get("event") in ("failover", "route_skipped")
    ]


# -- at submission ---------------------------------------------------------------------------


def test_a_rate_limited_first_route_fails_over_to_the_same_model_elsewhere_at_its_price(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given Kling answers 429 to the create call
    inject_fault(simulator, on="submit", kind="rate_limited", dialect="kling")

    # When a kling-v3 job is submitted
    job = submit(api, auth, model="kling-v3")

    # Then fal renders the same model, and the job is billed the model's price
    done = wait_for_status(api, auth, job["id"], "completed")
    assert done["failover_used"] is True and done["rendered_model"] == "kling-v3"
    assert hops(done) == [("failover", 1, "kling-v3", "rate_limited")]
    assert (done["credits"], done["credits_billed"]) == (3, 3)
    assert task_states(ctx, job["id"]) == [("kling", "refused"), ("fal", "succeeded")]
    assert ledger(ctx, job["id"]) == [("debit", -3)]
    assert balance(ctx, account) == START - 3


def test_a_failover_to_a_cheaper_model_bills_the_lower_price_and_refunds_the_difference(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given both kling-v3 routes are out of capacity at submission
    inject_fault(simulator, on="submit", kind="capacity", dialect="kling")
    inject_fault(simulator, on="submit", kind="server_error", dialect="fal")

    job = submit(api, auth, model="kling-v3")

    # Then Seedance renders it, billed 2 instead of 3, the difference refunded at once
    done = wait_for_status(api, auth, job["id"], "completed")
    assert done["rendered_model"] == "seedance-1-pro" and done["model"] == "kling-v3"
    assert [h[:3] for h in hops(done)] == [
        ("failover", 1, "kling-v3"),
        ("failover", 2, "seedance-1-pro"),
    ]
    assert (done["credits"], done["credits_billed"]) == (3, 2)
    assert ledger(ctx, job["id"]) == [("debit", -3), ("reprice:2", 1)]
    assert balance(ctx, account) == START - 2
    # ...and only BytePlus ever rendered it
    assert [r["dialect"] for r in renders(simulator)] == ["byteplus"]


def test_a_costlier_fallback_takes_the_job_at_the_charged_price(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given every kling-v3 and Seedance route refuses the job (fal only for Kling v3)
    inject_fault(simulator, on="submit", kind="rate_limited", dialect="kling")
    v3_at_fal = "fal-ai/kling-video/v3/pro/text-to-video"
    inject_fault(simulator, on="submit", kind="capacity", dialect="fal", model=v3_at_fal)
    inject_fault(simulator, on="submit", kind="server_error", dialect="byteplus")
    inject_fault(simulator, on="submit", kind="server_error", dialect="replicate")

    job = submit(api, auth, model="kling-v3")

    # Then Kling O3 Pro (5 credits) renders it, billed the 3 charged; the cheaper Seedance
    # routes that refused it changed nothing
    done = wait_for_status(api, auth, job["id"], "completed")
    assert done["rendered_model"] == "kling-o3-pro"
    assert (done["credits"], done["credits_billed"]) == (3, 3)
    assert ledger(ctx, job["id"]) == [("debit", -3)]
    assert balance(ctx, account) == START - 3


def test_a_content_policy_refusal_fails_at_once_without_failover(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    inject_fault(simulator, on="submit", kind="content_policy", dialect="kling")

    job = submit(api, auth, model="kling-v3")

    failed = wait_for_status(api, auth, job["id"], "failed")
    assert failed["error"]["code"] == "content_policy"
    assert failed["failover_used"] is False and hops(failed) == []
    assert task_states(ctx, job["id"]) == [("kling", "refused")]
    assert ledger(ctx, job["id"]) == [("debit", -3), ("refund", 3)]
    assert balance(ctx, account) == START


def test_a_lost_answer_is_retried_on_its_own_route_before_any_failover(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given fal (which cannot be searched by our key) makes the task but the answer is lost,
    # twice: one retry is allowed on the same route (GENHOOK_POLL_MAX_TRANSIENT_FAILURES=1)
    inject_fault(simulator, on="submit", kind="hang_after_create", dialect="fal", hang_seconds=2)
    inject_fault(simulator, on="submit", kind="hang_after_create", dialect="fal", hang_seconds=2)

    job = submit(api, auth, model="kling-o3-pro")

    # Then fal was asked twice, and only then the job moved on, to kling-v3 at its price
    done = wait_for_status(api, auth, job["id"], "completed")
    assert hops(done) == [("failover", 1, "kling-v3", "no_answer")]
    assert task_states(ctx, job["id"]) == [
        ("fal", "abandoned"),
        ("fal", "abandoned"),
        ("kling", "succeeded"),
    ]
    assert ledger(ctx, job["id"]) == [("debit", -5), ("reprice:1", 2)]
    assert balance(ctx, account) == START - 3


def test_a_job_whose_every_route_fails_is_retried_once_then_failed_and_refunded_exactly(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given every provider of kling-v3's chain answers 5xx, again and again
    for dialect in ("kling", "fal", "byteplus", "replicate"):
        inject_fault(simulator, on="submit", kind="server_error", dialect=dialect, times=50)

    job = submit(api, auth, model="kling-v3")

    # Then the plan is walked twice (one retry round), and the job fails refunded
    failed = wait_for_status(api, auth, job["id"], "failed")
    assert failed["error"]["code"] == "no_route_available"
    assert "elapsed_seconds" in failed["error"]
    rounds = [h for h in hops(failed) if h[3] == "plan_exhausted"]
    assert len(rounds) == 1
    assert len(task_states(ctx, job["id"])) == 2 * 5  # five routes, two rounds
    # No route took it, so no price changed: the whole charge came back
    assert ledger(ctx, job["id"]) == [("debit", -3), ("refund", 3)]
    assert failed["credits_billed"] == 0
    assert balance(ctx, account) == START


def test_a_route_cooling_down_is_skipped_and_the_chain_says_so(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    # Given Kling's route failed three times in a row moments ago (its breaker is open)
    health = RouteHealth(ctx.redis, ctx.settings)
    for _ in range(ctx.settings.provider_breaker_failures):
        health.record_failure("kling/kling-v3", "server_error", ctx.now())

    job = submit(api, auth, model="kling-v3")

    # Then the job goes straight to fal, and never called Kling
    done = wait_for_status(api, auth, job["id"], "completed")
    assert hops(done) == [
        ("route_skipped", 0, "kling-v3", "cooling_down"),
        ("failover", 1, "kling-v3", "cooling_down"),
    ]
    skipped = next(e for e in done["status_chain"] if e.get("event") == "route_skipped")
    assert skipped["until"] is not None
    assert task_states(ctx, job["id"]) == [("fal", "succeeded")]
    assert balance(ctx, account) == START - 3


def test_submission_failures_open_the_breaker_for_the_next_job(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, simulator: str
) -> None:
    # Given Kling rate-limits three jobs in a row
    inject_fault(simulator, on="submit", kind="rate_limited", dialect="kling", times=3)
    for _ in range(3):
        job = submit(api, auth, model="kling-v3")
        wait_for_status(api, auth, job["id"], "completed")

    # Then Kling's route cools down, and a fourth job skips it without asking
    assert RouteHealth(ctx.redis, ctx.settings).cooling_down_until("kling/kling-v3", ctx.now())
    job = submit(api, auth, model="kling-v3")
    wait_for_status(api, auth, job["id"], "completed")
    assert task_states(ctx, job["id"]) == [("fal", "succeeded")]


# -- mid-render ------------------------------------------------------------------------------


def test_two_capacity_failures_mid_render_fail_over_twice_with_no_second_charge(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given Kling and then fal run out of capacity while rendering
    inject_fault(simulator, on="render", kind="capacity", dialect="kling")
    inject_fault(simulator, on="render", kind="capacity", dialect="fal")

    job = submit(api, auth, model="kling-v3")

    # Then Seedance finishes it, billed its lower price; nothing was charged twice
    done = wait_for_status(api, auth, job["id"], "completed")
    assert [h[:3] for h in hops(done)] == [
        ("failover", 1, "kling-v3"),
        ("failover", 2, "seedance-1-pro"),
    ]
    assert {h[3] for h in hops(done)} == {"capacity"}
    assert task_states(ctx, job["id"]) == [
        ("kling", "failed"),
        ("fal", "failed"),
        ("byteplus", "succeeded"),
    ]
    assert ledger(ctx, job["id"]) == [("debit", -3), ("reprice:2", 1)]
    assert balance(ctx, account) == START - 2


def test_mid_render_a_costlier_fallback_is_skipped_and_the_job_fails_refunded(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given a Seedance job (2 credits) whose every route at that price dies mid-render
    inject_fault(simulator, on="render", kind="capacity", dialect="byteplus")
    inject_fault(simulator, on="render", kind="capacity", dialect="replicate", times=2)

    job = submit(api, auth, model="seedance-1-pro")

    # Then kling-v3 (3 credits) is never tried mid-render, and the job fails refunded
    failed = wait_for_status(api, auth, job["id"], "failed")
    assert failed["error"]["code"] == "capacity"
    assert [h[2] for h in hops(failed)] == ["seedance-1-pro", "wan-2.5"]
    providers = [p for p, _ in task_states(ctx, job["id"])]
    assert providers == ["byteplus", "replicate", "replicate"]
    assert not [r for r in renders(simulator) if r["dialect"] in ("kling", "fal")]
    assert ledger(ctx, job["id"]) == [("debit", -2), ("refund", 2)]
    assert balance(ctx, account) == START


def test_a_content_policy_failure_mid_render_does_not_fail_over(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    inject_fault(simulator, on="render", kind="content_policy", dialect="kling")

    job = submit(api, auth, model="kling-v3")

    failed = wait_for_status(api, auth, job["id"], "failed")
    assert failed["error"]["code"] == "content_policy" and hops(failed) == []
    assert ledger(ctx, job["id"]) == [("debit", -3), ("refund", 3)]
    assert balance(ctx, account) == START
