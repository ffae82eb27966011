"""What one job costs the worker: its first poll rides in the submitting message, and a
step's record comes from what it wrote (no second read).

Real Redis, real SQLite and PostgreSQL, the simulator on 127.0.0.1; no worker: the steps
are run by hand and the messages they send are recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backend.accounts import NewAccount
from backend.context import Context
from backend.jobs import finish
from backend.jobs.create import create_generation
from backend.jobs.states import JobPhase, JobStatus
from backend.jobs.submit import submit
from backend.schemas.generations import GenerationCreate
from backend.settings import Settings
from backend.simulator.app import create_app as create_simulator
from backend.simulator.credentials import all_provider_settings
from backend.store import jobs as jobs_store
from tests.conftest import make_settings
from tests.support.faults import CONTROL_TOKEN
from tests.support.wsgi_server import serve_wsgi

#: How long the simulator's renders take, unless a test parametrizes ``simulator``.
DEFAULT_RENDER_SECONDS = 60.0


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[str]:
    seconds = getattr(request, "param", DEFAULT_RENDER_SECONDS)
    with serve_wsgi(create_simulator(render_seconds=seconds, control_token=CONTROL_TOKEN)) as url:
        yield url


@pytest.fixture
def settings(database_url: str, redis_url: str, simulator: str) -> Settings:
    return make_settings(
        database_url, redis_url, simulator, simulator_fallback=False,
        webhook_retry_schedule="5s", **all_provider_settings(simulator),
    )  # fmt: skip


@pytest.fixture
def sent(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """The lifecycle messages the steps send, instead of sending them."""
    messages: list[tuple[str, tuple[Any, ...]]] = []
    for actor in ("submit_job", "poll_job", "poll_job_now", "deliver_webhook"):

        def record(*args: Any, _actor: str = actor, **kwargs: Any) -> bool:
            messages.append((_actor, (*args, kwargs.get("delay_seconds", 0))))
            return True

        monkeypatch.setattr(ctx.queue, actor, record)
    return messages


def new_job(ctx: Context, account: NewAccount) -> str:
    request = GenerationCreate(
        model="seedance-1-pro", prompt="A sunlit loft", webhook_url="http://127.0.0.1:9/hook"
    )
    return create_generation(ctx, account.account.id, request).id


def job_of(ctx: Context, job_id: str) -> jobs_store.JobRecord:
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
    assert job is not None
    return job


@pytest.mark.parametrize("simulator", [0], indirect=True)
def test_a_render_done_at_submission_ends_in_the_submitting_message(
    ctx: Context, account: NewAccount, sent: list[tuple[str, tuple[Any, ...]]]
) -> None:
    # Given a provider that renders at once
    job_id = new_job(ctx, account)

    # When the job is submitted
    sent.clear()  # the API's submit_job
    submit(ctx, job_id)

    # Then the same message polled it, kept its output and completed it
    job = job_of(ctx, job_id)
    assert job.status == JobStatus.COMPLETED and job.output_key is not None
    # ...and the only message it sent is the webhook's: no poll went through the queue
    assert [actor for actor, _ in sent] == ["deliver_webhook"]


def test_a_running_render_is_polled_at_submission_and_its_chain_goes_on(
    ctx: Context, account: NewAccount, sent: list[tuple[str, tuple[Any, ...]]]
) -> None:
    # Given a render of a minute
    job_id = new_job(ctx, account)

    # When the job is submitted
    sent.clear()  # the API's submit_job
    submit(ctx, job_id)

    # Then the provider was already asked where the render is
    job = job_of(ctx, job_id)
    assert job.status == JobStatus.PROCESSING and job.last_polled_at is not None
    # ...and the chain goes on with one poll message, carrying the job's current token,
    # paced by that first answer rather than sent at once
    [(actor, (sent_id, token, delay))] = sent
    assert (actor, sent_id, token) == ("poll_job", job_id, job.poll_token)
    assert delay > 0


def test_a_step_returns_the_job_exactly_as_stored(ctx: Context, account: NewAccount) -> None:
    # Given a job moved through submission, a failover-like note and a failure
    job_id = new_job(ctx, account)
    with ctx.store.begin() as conn:
        moved = jobs_store.transition(
            conn, job_id, JobStatus.PROCESSING, phase=JobPhase.RENDERING,
            note={"event": "route_skipped", "route_index": 0},
            provider_job_id="t-1", submitted_at=ctx.now(), progress=40, eta_seconds=12.5,
        )  # fmt: skip
    failed = finish.fail(ctx, job_id, code="provider_failed", message="boom")

    # Then what each step returned is what the database holds
    assert moved is not None and failed is not None
    assert failed == job_of(ctx, job_id)
    with ctx.store.begin() as conn:
        reread = jobs_store.transition(conn, job_id, JobStatus.FAILED)
    assert reread is None  # a terminal job does not move
