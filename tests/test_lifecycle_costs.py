"""What one job costs the worker: its first poll rides in the submitting message, a step's
record comes from what it wrote (no second read), and with provider callbacks the backstop
poll waits for the render's expected end.

Real Redis, real SQLite and PostgreSQL, the simulator on 127.0.0.1; no worker: the steps
are run by hand and the messages they send are recorded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from backend.accounts import NewAccount, create_account
from backend.context import Context
from backend.jobs import finish
from backend.jobs.create import create_generation
from backend.jobs.poll import _pace
from backend.jobs.states import JobPhase, JobStatus
from backend.jobs.submit import submit
from backend.providers.base import RenderState, RenderStatus
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


def test_with_callbacks_the_backstop_poll_waits_for_the_expected_end(ctx: Context) -> None:
    # Given a provider that calls back (a public address is set; BytePlus calls back)
    backstop = ctx.settings.provider_callback_poll_seconds
    with_callbacks = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"public_base_url": "https://gh.example"})
    )
    started = ctx.now() - timedelta(seconds=55)
    job = dataclasses.replace(_running_job(ctx), submitted_at=started, provider="byteplus")
    running = RenderStatus(state=RenderState.RUNNING, phase=JobPhase.RENDERING)

    # When a render expected to take 60 s is polled 55 s in
    pace = _pace(with_callbacks, job, running, ctx.now())

    # Then the next poll is a backstop after the expected end, not a poll near it
    assert pace.eta_seconds == pytest.approx(5, abs=1)
    assert pace.next_poll_seconds == pytest.approx(pace.eta_seconds + backstop, abs=0.5)
    # ...where without callbacks the render would be polled before it is expected to end
    assert _pace(ctx, job, running, ctx.now()).next_poll_seconds < pace.eta_seconds
    # ...and far from its end the backstop still comes within two backstops
    early = dataclasses.replace(job, submitted_at=ctx.now())
    assert _pace(with_callbacks, early, running, ctx.now()).next_poll_seconds == 2 * backstop


def _running_job(ctx: Context) -> jobs_store.JobRecord:
    account = create_account(ctx, "pace@example.com")
    return job_of(ctx, new_job(ctx, account))


def test_overdue_and_unscheduled_polls_are_found_within_the_limit(
    ctx: Context, account: NewAccount
) -> None:
    # Given processing jobs: two overdue, one never scheduled, one due later, one pending
    now = ctx.now()
    ids = [new_job(ctx, account) for _ in range(5)]
    next_polls = [now - timedelta(minutes=5), now - timedelta(minutes=1), None, now]
    with ctx.store.begin() as conn:
        for job_id, next_poll_at in zip(ids, next_polls, strict=False):
            jobs_store.transition(
                conn, job_id, JobStatus.PROCESSING, provider_job_id="t", next_poll_at=next_poll_at
            )

    # Then the recovery pass's query finds the overdue and the unscheduled ones
    cutoff = now - timedelta(seconds=20)
    with ctx.store.begin() as conn:
        assert sorted(jobs_store.stalled_polls(conn, cutoff)) == sorted(ids[:3])
        # ...never more than asked for
        assert len(jobs_store.stalled_polls(conn, cutoff, limit=2)) == 2
