"""A worker that dies in the middle of a create call: the next submission finds the task
the provider made (or makes the one it did not), and never pays for two."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from backend.accounts import NewAccount
from backend.context import Context
from backend.jobs import finish, sweep
from backend.jobs.create import create_generation
from backend.jobs.poll import _eta_seconds, poll_interval_seconds
from backend.jobs.states import JobPhase, JobStatus
from backend.jobs.submit import submit
from backend.providers.base import RenderRequest, RenderState, RenderStatus
from backend.schemas.generations import GenerationCreate
from backend.settings import Settings
from backend.simulator.app import create_app as create_simulator
from backend.simulator.credentials import all_provider_settings
from backend.store import jobs as jobs_store
from backend.store import provider_tasks as tasks_store
from backend.store.provider_tasks import TaskState
from tests.conftest import make_settings
from tests.support.faults import renders
from tests.support.wsgi_server import serve_wsgi


@pytest.fixture
def simulator() -> Iterator[str]:
    """Renders that take a minute: these stories happen while a task is still running."""
    with serve_wsgi(create_simulator(render_seconds=60)) as url:
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


def test_the_eta_comes_from_the_provider_progress_when_it_gives_no_estimate(
    ctx: Context, account: NewAccount
) -> None:
    # Given a job that has been at its provider for 30 s
    job = create_generation(
        ctx, account.account.id, GenerationCreate(model="runway-gen4.5", prompt="A loft")
    )
    now = ctx.now()
    running = dataclasses.replace(job, submitted_at=now - timedelta(seconds=30))

    def eta(**status: object) -> float | None:
        values: dict[str, Any] = {"state": RenderState.RUNNING, "phase": JobPhase.RENDERING}
        return _eta_seconds(running, RenderStatus(**{**values, **status}), now)

    # Then a quarter done in 30 s leaves about 90 s; no progress leaves the catalog's guess
    assert eta(progress=25.0) == pytest.approx(90.0)
    assert eta(progress=None) is None
    assert eta(progress=0.0) is None
    assert eta(progress=40.0, eta_seconds=12.0) == 12.0


def test_a_timed_out_job_abandons_its_running_task_and_cancels_it(
    ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given a Runway job whose task is still rendering
    request = GenerationCreate(model="runway-gen4.5", prompt="A loft")
    job_id = create_generation(ctx, account.account.id, request).id
    submit(ctx, job_id)

    # When it outlives the maximum wait
    expired = sweep.expire_overdue(
        dataclasses.replace(
            ctx, settings=ctx.settings.model_copy(update={"job_timeout_seconds": 0.001})
        )
    )

    # Then it is failed, its task is recorded as abandoned, and Runway was told to cancel it
    assert expired == 1
    with ctx.store.begin() as conn:
        [task] = tasks_store.tasks_of_job(conn, job_id)
    assert task.state == TaskState.ABANDONED and task.ended_at is not None
    [render] = renders(simulator)
    assert render["status"] == "canceled"


def test_with_callbacks_polling_slows_to_the_backstop(ctx: Context) -> None:
    backstop = ctx.settings.provider_callback_poll_seconds
    with_callbacks = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"public_base_url": "https://gh.example"})
    )

    assert poll_interval_seconds(with_callbacks, "kling") == backstop
    # Runway never calls back, and without a public address nobody can
    assert poll_interval_seconds(with_callbacks, "runway") == ctx.settings.poll_interval_seconds
    assert poll_interval_seconds(ctx, "kling") == ctx.settings.poll_interval_seconds
