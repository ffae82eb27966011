"""Canceling a generation through the API: the render stops where its provider allows, the
job is refunded exactly once whatever it races, and its webhooks say so.

Every provider is enabled against its simulator dialect, and renders take a minute, so
each story happens while a job is still waiting or rendering. Stories that need a job at
a precise step run that step in the test (``submit``, ``finish.complete``) with no worker.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import dramatiq
import pytest
from falcon import testing
from standardwebhooks import Webhook

from backend import redis_keys
from backend.accounts import NewAccount, create_account
from backend.context import Context
from backend.jobs import finish
from backend.jobs.create import create_generation
from backend.jobs.submit import submit as submit_step
from backend.queue import JOBS_QUEUE
from backend.schemas.generations import GenerationCreate
from backend.settings import Settings
from backend.simulator.app import create_app as create_simulator
from backend.simulator.credentials import all_provider_settings
from backend.store import provider_tasks as tasks_store
from tests.conftest import make_settings, wait_until
from tests.support.api import GENERATIONS, deliveries_of, submit, wait_for_status
from tests.support.faults import CONTROL_TOKEN, inject_fault, renders, stats
from tests.support.ledger import balance, ledger, task_states
from tests.support.receiver import WebhookReceiver
from tests.support.wsgi_server import serve_wsgi

START = 100
CANCELED = "video.generation.canceled"
PROBLEM = "application/problem+json"

#: (model, the provider of its first route, its 5 s price) for providers that can stop a
#: render, and for those whose API cannot.
STOPPABLE = [
    ("runway-gen4.5", "runway", 5),
    ("kling-o3-pro", "fal", 5),
    ("wan-2.5", "replicate", 2),
    ("seedance-1-pro", "byteplus", 2),
]
UNSTOPPABLE = [
    ("kling-v3", "kling", 3),
    ("luma-ray-2", "luma", 4),
    ("veo-3.1-fast", "gemini", 6),
    ("hailuo-02", "minimax", 3),
]


@pytest.fixture
def simulator() -> Iterator[str]:
    """Renders that take a minute: every cancel here meets a render still running."""
    with serve_wsgi(create_simulator(render_seconds=60, control_token=CONTROL_TOKEN)) as url:
        yield url


@pytest.fixture
def settings(database_url: str, redis_url: str, simulator: str) -> Settings:
    """Every provider enabled against its dialect; no native simulator stand-in."""
    return make_settings(
        database_url,
        redis_url,
        simulator,
        simulator_fallback=False,
        provider_timeout_seconds=5.0,
        signup_credits=START,
        **all_provider_settings(simulator),
    )


# -- helpers ---------------------------------------------------------------------------------


def cancel(api: testing.TestClient, auth: dict[str, str], job_id: str) -> testing.Result:
    return api.simulate_post(f"{GENERATIONS}/{job_id}/cancel", headers=auth)


def read(api: testing.TestClient, auth: dict[str, str], job_id: str) -> dict:
    result = api.simulate_get(f"{GENERATIONS}/{job_id}", headers=auth)
    assert result.status_code == 200, result.text
    return dict(result.json)


def rendering_in_process(ctx: Context, account: NewAccount, model: str = "runway-gen4.5") -> str:
    """A paid job handed to its provider by running the submit step here (no worker: its
    first poll waits in Redis, and nothing else moves it)."""
    request = GenerationCreate(model=model, prompt="A sunlit loft")
    job_id = create_generation(ctx, account.account.id, request).id
    submit_step(ctx, job_id)
    return job_id


def all_at_once(*actions: Callable[[], Any]) -> list[Any]:
    """Run ``actions`` in threads released together; their results, in order."""
    gate = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(index: int) -> None:
        gate.wait()
        results[index] = actions[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def assert_problem(result: testing.Result, status: int, detail: str) -> None:
    assert result.status_code == status, result.text
    assert result.headers["content-type"] == PROBLEM
    assert result.json["status"] == status and detail in result.json["detail"]


# -- a render in progress ----------------------------------------------------------------------


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(("model", "provider", "price"), STOPPABLE)
def test_canceling_a_render_stops_it_at_a_provider_that_can_and_refunds_it(
    api: testing.TestClient,
    auth: dict[str, str],
    ctx: Context,
    account: NewAccount,
    simulator: str,
    model: str,
    provider: str,
    price: int,
) -> None:
    assert ctx.providers[provider].supports_cancel
    # Given a job rendering at its provider
    job = submit(api, auth, model=model)
    wait_for_status(api, auth, job["id"], "processing")

    # When its owner cancels it
    result = cancel(api, auth, job["id"])

    # Then it is canceled and refunded, and owes nothing
    assert result.status_code == 200, result.text
    canceled = result.json
    assert (canceled["status"], canceled["refunded"]) == ("canceled", True)
    assert (canceled["credits"], canceled["credits_billed"]) == (price, 0)
    assert canceled["error"]["code"] == "canceled"
    assert ledger(ctx, job["id"]) == [("debit", -price), ("refund", price)]
    assert balance(ctx, account) == START
    # ...the provider stopped the render, and the task is recorded as canceled
    [render] = renders(simulator)
    assert (render["dialect"], render["status"]) == (provider, "canceled")
    assert task_states(ctx, job["id"]) == [(provider, "canceled")]


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize(("model", "provider", "price"), UNSTOPPABLE)
def test_canceling_a_render_a_provider_cannot_stop_refunds_it_and_abandons_the_task(
    api: testing.TestClient,
    auth: dict[str, str],
    ctx: Context,
    account: NewAccount,
    simulator: str,
    model: str,
    provider: str,
    price: int,
) -> None:
    assert not ctx.providers[provider].supports_cancel
    job = submit(api, auth, model=model)
    wait_for_status(api, auth, job["id"], "processing")

    result = cancel(api, auth, job["id"])

    # Then the job is canceled and refunded all the same
    assert result.status_code == 200, result.text
    assert (result.json["status"], result.json["credits_billed"]) == ("canceled", 0)
    assert ledger(ctx, job["id"]) == [("debit", -price), ("refund", price)]
    assert balance(ctx, account) == START
    # ...while the render runs on, recorded as abandoned (the operator may pay for it)
    [render] = renders(simulator)
    assert render["dialect"] == provider and render["status"] != "canceled"
    assert task_states(ctx, job["id"]) == [(provider, "abandoned")]


def test_a_render_the_provider_fails_to_stop_is_recorded_abandoned_not_canceled(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given a Seedance job at BytePlus, whose API answers 5xx to the cancel's status lookup
    job_id = rendering_in_process(ctx, account, model="seedance-1-pro")
    inject_fault(simulator, on="poll", kind="server_error", dialect="byteplus")

    result = cancel(api, auth, job_id)

    # Then the owner's cancel still succeeds, refunded
    assert result.status_code == 200, result.text
    assert ledger(ctx, job_id) == [("debit", -2), ("refund", 2)]
    # ...but the task is not claimed to be canceled: the render goes on
    [render] = renders(simulator)
    assert render["status"] != "canceled"
    assert task_states(ctx, job_id) == [("byteplus", "abandoned")]


@pytest.mark.usefixtures("worker")
def test_the_cancel_webhook_goes_once_to_the_jobs_url_and_once_to_a_subscribed_endpoint(
    api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given an endpoint subscribed to cancellations, and a Runway job with its own URL
    app, url = receiver
    created = api.simulate_post(
        "/v1/webhook-endpoints", json={"url": f"{url}/endpoint", "events": [CANCELED]}, headers=auth
    )
    assert created.status_code == 201, created.text
    endpoint_secret = created.json["secret"]
    job = submit(api, auth, model="runway-gen4.5", webhook_url=f"{url}/job")
    wait_for_status(api, auth, job["id"], "processing")

    # When it is canceled
    assert cancel(api, auth, job["id"]).status_code == 200

    # Then both destinations are told once, and nothing else was sent
    def settled() -> list[dict] | None:
        found = deliveries_of(api, auth, job["id"])
        return found if len(found) == 2 and all(d["status"] != "pending" for d in found) else None

    deliveries = wait_until(settled)
    assert {(d["event"], d["status"]) for d in deliveries} == {(CANCELED, "delivered")}
    assert sorted(request.path for request in app.requests) == ["/endpoint", "/job"]
    # ...each signed with its own secret, naming the event in header and body
    secrets = {"/job": account.signing_secret, "/endpoint": endpoint_secret}
    for hook in app.requests:
        body = Webhook(secrets[hook.path]).verify(hook.body, hook.headers)
        assert hook.headers["x-genhook-event"] == CANCELED
        assert (body["event"], body["id"], body["status"]) == (CANCELED, job["id"], "canceled")
        assert (body["credits_billed"], body["error"]["code"]) == (0, "canceled")


# -- before the provider has the job ---------------------------------------------------------


def test_a_job_canceled_before_any_worker_saw_it_is_never_submitted(
    api: testing.TestClient,
    auth: dict[str, str],
    ctx: Context,
    account: NewAccount,
    simulator: str,
    request: pytest.FixtureRequest,
) -> None:
    # Given a job accepted while no worker runs: its submission waits in Redis
    job = submit(api, auth, model="runway-gen4.5")
    assert job["status"] == "pending"

    # When it is canceled, and only then does a worker take the submission
    result = cancel(api, auth, job["id"])
    assert result.status_code == 200, result.text
    request.getfixturevalue("worker")
    dramatiq.get_broker().join(JOBS_QUEUE, timeout=10_000)

    # Then no task was ever asked for, and the job stays canceled and refunded once
    assert stats(simulator)["submits"] == 0 and renders(simulator) == []
    assert task_states(ctx, job["id"]) == []
    assert read(api, auth, job["id"])["status"] == "canceled"
    assert ledger(ctx, job["id"]) == [("debit", -5), ("refund", 5)]
    assert balance(ctx, account) == START


@pytest.mark.usefixtures("worker")
def test_a_cancel_while_the_create_call_is_out_stops_the_task_it_made(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given Runway creates the task but takes a second to answer
    inject_fault(simulator, on="submit", kind="hang_after_create", dialect="runway", hang_seconds=1)
    job = submit(api, auth, model="runway-gen4.5")
    wait_until(lambda: renders(simulator))
    assert task_states(ctx, job["id"]) == [("runway", "submitting")]
    assert read(api, auth, job["id"])["status"] == "pending"

    # When the job is canceled while the create call is out
    result = cancel(api, auth, job["id"])
    assert result.status_code == 200, result.text
    assert result.json["status"] == "canceled"

    # Then the task that answer names is stopped at Runway, and never polled into the job
    wait_until(lambda: renders(simulator)[0]["status"] == "canceled")

    def closed_task() -> list[tasks_store.ProviderTaskRecord] | None:
        with ctx.store.begin() as conn:
            tasks = tasks_store.tasks_of_job(conn, job["id"])
        return tasks if tasks and tasks[0].task_id is not None else None

    [task] = wait_until(closed_task)
    assert task.task_id == renders(simulator)[0]["id"]
    # ...recorded canceled, since Runway said it stopped it
    wait_until(lambda: task_states(ctx, job["id"]) == [("runway", "canceled")])
    assert task.ended_at is not None
    assert read(api, auth, job["id"])["status"] == "canceled"
    assert ledger(ctx, job["id"]) == [("debit", -5), ("refund", 5)]
    assert balance(ctx, account) == START


# -- what cannot be canceled -----------------------------------------------------------------


def test_a_second_cancel_is_a_409_and_refunds_nothing_more(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    job = submit(api, auth, model="runway-gen4.5")
    assert cancel(api, auth, job["id"]).status_code == 200

    again = cancel(api, auth, job["id"])

    assert_problem(again, 409, "already canceled")
    assert ledger(ctx, job["id"]) == [("debit", -5), ("refund", 5)]
    assert balance(ctx, account) == START


@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_a_job_that_already_ended_cannot_be_canceled(
    api: testing.TestClient,
    auth: dict[str, str],
    ctx: Context,
    account: NewAccount,
    outcome: str,
) -> None:
    # Given a Runway job that completed, or failed and was refunded
    job_id = rendering_in_process(ctx, account)
    if outcome == "completed":
        assert finish.complete(ctx, job_id, output_url="https://cdn.example/v.mp4")
    else:
        assert finish.fail(ctx, job_id, code="provider_failed", message="it broke")
    before = ledger(ctx, job_id)

    result = cancel(api, auth, job_id)

    # Then the cancel is refused and changes nothing
    assert_problem(result, 409, f"already {outcome}")
    assert read(api, auth, job_id)["status"] == outcome
    assert ledger(ctx, job_id) == before
    assert before == ([("debit", -5)] if outcome == "completed" else [("debit", -5), ("refund", 5)])


def test_another_accounts_job_and_an_unknown_id_are_404(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    # Given a job of another account
    other = create_account(ctx, "other@example.com")
    job = submit(api, {"Authorization": f"Bearer {other.api_key}"}, model="runway-gen4.5")

    # Then this account can neither cancel it nor an id that does not exist
    assert_problem(cancel(api, auth, job["id"]), 404, job["id"])
    assert_problem(cancel(api, auth, "vgen_doesnotexist"), 404, "vgen_doesnotexist")
    # ...and the other account's job goes on, paid
    assert ledger(ctx, job["id"]) == [("debit", -5)]
    assert read(api, {"Authorization": f"Bearer {other.api_key}"}, job["id"])["status"] == (
        "pending"
    )


# -- races -----------------------------------------------------------------------------------


def test_cancels_racing_each_other_refund_once_and_all_but_one_get_409(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    job_id = rendering_in_process(ctx, account)

    results = all_at_once(*[lambda: cancel(api, auth, job_id)] * 4)

    codes = sorted(result.status_code for result in results)
    assert codes == [200, 409, 409, 409]
    assert ledger(ctx, job_id) == [("debit", -5), ("refund", 5)]
    assert balance(ctx, account) == START
    assert renders(simulator)[0]["status"] == "canceled"
    assert task_states(ctx, job_id) == [("runway", "canceled")]


def test_a_cancel_racing_the_completion_leaves_one_outcome_paid_exactly(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    spent = 0
    for _ in range(4):
        # Given a job finishing at the very moment its owner cancels it
        job_id = rendering_in_process(ctx, account)
        completed, canceled = all_at_once(
            partial(finish.complete, ctx, job_id, output_url="https://cdn.example/v.mp4"),
            partial(cancel, api, auth, job_id),
        )

        # Then exactly one of them won, and the ledger says which
        status = read(api, auth, job_id)["status"]
        if status == "completed":
            assert completed is not None and canceled.status_code == 409
            assert ledger(ctx, job_id) == [("debit", -5)]
            spent += 5
        else:
            assert status == "canceled"
            assert completed is None and canceled.status_code == 200
            assert ledger(ctx, job_id) == [("debit", -5), ("refund", 5)]
    assert balance(ctx, account) == START - spent


# -- reading a canceled job ------------------------------------------------------------------


def test_a_canceled_job_reads_canceled_from_cache_and_database_and_lists_by_status(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    # Given two waiting jobs, one of which is canceled
    kept = submit(api, auth, model="kling-v3")
    dropped = submit(api, auth, model="kling-v3")
    assert cancel(api, auth, dropped["id"]).status_code == 200

    # Then the status cache was updated with the cancel...
    raw = ctx.redis.get(redis_keys.job_status(dropped["id"]))
    assert raw is not None
    cached = json.loads(raw)
    assert cached["generation"]["status"] == "canceled"
    assert read(api, auth, dropped["id"])["status"] == "canceled"
    # ...and the database agrees once the cache is gone
    ctx.redis.delete(redis_keys.job_status(dropped["id"]))
    from_database = read(api, auth, dropped["id"])
    assert (from_database["status"], from_database["refunded"]) == ("canceled", True)

    # ...and listing by status finds each job under its own
    def listed(status: str) -> list[str]:
        result = api.simulate_get(GENERATIONS, params={"status": status}, headers=auth)
        assert result.status_code == 200, result.text
        return [job["id"] for job in result.json["data"]]

    assert listed("canceled") == [dropped["id"]]
    assert listed("pending") == [kept["id"]]
