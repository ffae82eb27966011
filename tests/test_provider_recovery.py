"""A worker that dies in the middle of a create call: the next submission finds the task
the provider made (or makes the one it did not), and never pays for two."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from backend.accounts import NewAccount
from backend.context import Context
from backend.jobs import finish, sweep
from backend.jobs.create import create_generation
from backend.jobs.poll import _pace, poll, poll_interval_seconds
from backend.jobs.states import JobPhase, JobStatus
from backend.jobs.submit import submit
from backend.providers.base import RenderRequest, RenderState, RenderStatus
from backend.schemas.generations import GenerationCreate
from backend.settings import Settings
from backend.simulator.app import create_app as create_simulator
from backend.simulator.credentials import all_provider_settings
from backend.store import accounts as accounts_store
from backend.store import jobs as jobs_store
from backend.store import provider_tasks as tasks_store
from backend.store.provider_tasks import TaskState
from backend.store.tables import credit_ledger
from tests.conftest import make_settings
from tests.support.faults import CONTROL_TOKEN, renders
from tests.support.wsgi_server import serve_wsgi


@pytest.fixture
def simulator() -> Iterator[str]:
    """Renders that take a minute: these stories happen while a task is still running."""
    with serve_wsgi(create_simulator(render_seconds=60, control_token=CONTROL_TOKEN)) as url:
        yield url


@pytest.fixture
def settings(database_url: str, redis_url: str, simulator: str) -> Settings:
    return make_settings(
        database_url, redis_url, simulator, simulator_fallback=False,
        **all_provider_settings(simulator),
    )  # fmt: skip


def pending_job_with_a_create_in_flight(ctx: Context, account: NewAccount) -> str:
    """A paid job whose worker recorded a create call to Kling and died before the answer."""
    request = GenerationCreate(model="kling-v3", prompt="A sunlit loft")
    job = create_generation(ctx, account.account.id, request)
    with ctx.store.begin() as conn:
        tasks_store.start_task(
            conn, job_id=job.id, provider="kling", provider_model="kling-v3",
            callback_token_hash=None,
        )  # fmt: skip
    return job.id


def test_the_task_a_dead_worker_created_is_found_not_made_again(
    ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given the dead worker's request did reach Kling
    job_id = pending_job_with_a_create_in_flight(ctx, account)
    made = ctx.providers["kling"].submit(
        RenderRequest(job_id=job_id, model="kling-v3", prompt="A sunlit loft",
                      duration_seconds=5, aspect_ratio="16:9")
    )  # fmt: skip

    # When the job is submitted again (by the sweep, say)
    submit(ctx, job_id)

    # Then it follows the task Kling already has, and Kling has only that one
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
        [task] = tasks_store.tasks_of_job(conn, job_id)
    assert job is not None and job.status == JobStatus.PROCESSING
    assert job.provider_job_id == made == task.task_id
    assert task.state == TaskState.RUNNING
    assert len(renders(simulator)) == 1


def test_a_create_that_never_left_is_made_and_the_stale_attempt_abandoned_at_the_end(
    ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given the dead worker's request never reached Kling
    job_id = pending_job_with_a_create_in_flight(ctx, account)

    # When the job is submitted again, then finishes
    submit(ctx, job_id)
    finish.complete(ctx, job_id, output_url="https://example.com/v.mp4")

    # Then exactly one task was made, and the stale attempt is closed as abandoned
    assert len(renders(simulator)) == 1
    with ctx.store.begin() as conn:
        stale, made = tasks_store.tasks_of_job(conn, job_id)
    assert (stale.state, stale.task_id) == (TaskState.ABANDONED, None)
    assert made.state == TaskState.SUCCEEDED and stale.ended_at is not None


def test_the_eta_comes_from_the_route_history_refined_by_the_provider_progress(
    ctx: Context, account: NewAccount
) -> None:
    # Given a Runway job (typical render 90 s) that has been at its provider for 30 s
    job = create_generation(
        ctx, account.account.id, GenerationCreate(model="runway-gen4.5", prompt="A loft")
    )
    now = ctx.now()
    running = dataclasses.replace(job, submitted_at=now - timedelta(seconds=30))

    def eta(**status: object) -> float:
        values: dict[str, Any] = {"state": RenderState.RUNNING, "phase": JobPhase.RENDERING}
        return _pace(ctx, running, RenderStatus(**{**values, **status}), now).eta_seconds

    # Then with no progress the catalog's typical time counts down
    assert eta() == pytest.approx(60.0)
    # ...a progress number pulls it towards its own estimate (90% in 30 s: about 3 s left)
    assert eta(progress=90.0) < 15.0
    # ...and the provider's own estimate wins
    assert eta(progress=40.0, eta_seconds=12.0) == 12.0

    # When Runway's real renders turn out to take about 200 s
    for _ in range(20):
        ctx.history.record("runway-gen4.5", "runway/gen4.5", 200.0)

    # Then the same job is expected to need far longer
    assert eta() > 120.0


def test_polls_are_rare_far_from_the_end_and_follow_the_route_minimum_near_it(
    ctx: Context, account: NewAccount
) -> None:
    settings = ctx.settings.model_copy(
        update={"poll_interval_seconds": 2.0, "poll_max_interval_seconds": 30.0}
    )
    paced = dataclasses.replace(ctx, settings=settings)
    job = create_generation(
        ctx, account.account.id, GenerationCreate(model="runway-gen4.5", prompt="A loft")
    )
    now = ctx.now()
    status = RenderStatus(RenderState.RUNNING, JobPhase.RENDERING)

    def next_poll(elapsed: float) -> float:
        running = dataclasses.replace(job, submitted_at=now - timedelta(seconds=elapsed))
        return _pace(paced, running, status, now).next_poll_seconds

    # Early in a 90 s render genhook waits long; near its end, Runway's own 5 s minimum
    assert next_poll(1.0) == 30.0
    assert next_poll(88.0) == 5.0


def test_a_timed_out_job_abandons_its_running_task_and_cancels_it(
    ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given a Runway job whose task is still rendering
    request = GenerationCreate(model="runway-gen4.5", prompt="A loft")
    job_id = create_generation(ctx, account.account.id, request).id
    submit(ctx, job_id)

    # When it outlives its model's maximum wait
    with ctx.store.begin() as conn:
        jobs_store.update_job(conn, job_id, deadline_at=ctx.now() - timedelta(seconds=1))
    expired = sweep.expire_overdue(ctx)

    # Then it is failed, its task is recorded as abandoned, and Runway was told to cancel it
    assert expired == 1
    with ctx.store.begin() as conn:
        [task] = tasks_store.tasks_of_job(conn, job_id)
    assert task.state == TaskState.ABANDONED and task.ended_at is not None
    [render] = renders(simulator)
    assert render["status"] == "canceled"


def test_a_timeout_raced_by_sweeps_and_the_poll_actor_fails_and_refunds_exactly_once(
    ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given a Runway job still rendering that outlived its model's maximum wait
    request = GenerationCreate(model="runway-gen4.5", prompt="A loft", webhook_url=None)
    job_id = create_generation(ctx, account.account.id, request).id
    submit(ctx, job_id)
    with ctx.store.begin() as conn:
        jobs_store.update_job(conn, job_id, deadline_at=ctx.now() - timedelta(seconds=1))
        token = jobs_store.get_job(conn, job_id).poll_token  # type: ignore[union-attr]
    assert token is not None

    # When three sweeps and two poll messages of its chain all act at the same moment
    racers = [threading.Thread(target=sweep.expire_overdue, args=(ctx,)) for _ in range(3)]
    racers += [threading.Thread(target=poll, args=(ctx, job_id, token)) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()

    # Then it failed once with its elapsed time, was refunded once, and the render stopped
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
        ledger = conn.execute(
            sa.select(credit_ledger.c.reason, credit_ledger.c.delta)
            .where(credit_ledger.c.job_id == job_id)
            .order_by(credit_ledger.c.id)
        ).all()
        balance = accounts_store.get_account(conn, account.account.id).credits  # type: ignore[union-attr]
        assert accounts_store.ledger_balance(conn, account.account.id) == balance
    assert job is not None and job.status == JobStatus.FAILED
    assert job.error is not None and job.error["code"] == "timeout"
    assert job.error["elapsed_seconds"] > 0
    assert [tuple(row) for row in ledger] == [("debit", -5), ("refund", 5)]
    assert balance == ctx.settings.signup_credits
    [render] = renders(simulator)
    assert render["status"] == "canceled"


def test_with_callbacks_polling_slows_to_the_backstop(ctx: Context) -> None:
    backstop = ctx.settings.provider_callback_poll_seconds
    with_callbacks = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"public_base_url": "https://gh.example"})
    )

    assert poll_interval_seconds(with_callbacks, "kling") == backstop
    # Runway never calls back, and without a public address nobody can
    longest = ctx.settings.poll_max_interval_seconds
    assert poll_interval_seconds(with_callbacks, "runway") == longest
    assert poll_interval_seconds(ctx, "kling") == longest
