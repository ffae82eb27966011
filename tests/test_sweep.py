"""Nothing lost: when a message vanishes (Redis restart, crash between commit and enqueue)
the database still knows what each job waits for, and the sweep puts it back on track."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from backend import redis_keys
from backend.accounts import NewAccount
from backend.broker import build_broker
from backend.context import Context
from backend.jobs import finish, sweep
from backend.jobs.create import create_generation
from backend.jobs.deliver import deliver
from backend.jobs.poll import poll
from backend.jobs.states import JobStatus
from backend.jobs.submit import submit
from backend.locks import held
from backend.queue import Queue
from backend.schemas.generations import GenerationCreate
from backend.store import accounts as accounts_store
from backend.store import deliveries as deliveries_store
from backend.store import jobs as jobs_store
from backend.store.tables import credit_ledger
from tests.conftest import wait_until
from tests.support.faults import inject_fault, stats
from tests.support.receiver import Reply, WebhookReceiver

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def lossy(ctx: Context) -> Context:
    """The same process, but every enqueue fails as if Redis were down."""
    return dataclasses.replace(ctx, queue=Queue(build_broker("redis://127.0.0.1:1/0")))


def sweeping(ctx: Context, **settings: float) -> Context:
    """``ctx`` with sweep thresholds short enough for a test."""
    values = {"sweep_stall_seconds": 0.001, **settings}
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update=values))


def new_job(ctx: Context, account: NewAccount, webhook_url: str | None = None) -> str:
    request = GenerationCreate(model="kling-v3", prompt="p", webhook_url=webhook_url)
    return create_generation(ctx, account.account.id, request).id


def past_deadline(ctx: Context, job_id: str) -> None:
    with ctx.store.begin() as conn:
        jobs_store.update_job(conn, job_id, deadline_at=ctx.now() - timedelta(seconds=1))


def status_of(ctx: Context, job_id: str) -> JobStatus:
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
    assert job is not None
    return job.status


def test_a_job_whose_submit_message_was_lost_is_resubmitted(
    ctx: Context, lossy: Context, account: NewAccount
) -> None:
    # Given a paid job whose submit message never reached Redis
    job_id = new_job(lossy, account)
    assert status_of(ctx, job_id) == JobStatus.PENDING

    # When the sweep runs
    report = sweep.run_sweeps(sweeping(ctx))

    # Then the job is submitted again and completes
    assert report.resubmitted == 1
    wait_until(lambda: status_of(ctx, job_id) == JobStatus.COMPLETED)


def test_a_job_whose_poll_message_was_lost_is_polled_again(
    ctx: Context, lossy: Context, account: NewAccount
) -> None:
    # Given a job at the provider whose next poll message was lost
    job_id = new_job(lossy, account)
    submit(lossy, job_id)
    assert status_of(ctx, job_id) == JobStatus.PROCESSING

    # When the sweep runs after the poll fell due, a new poll chain finishes it
    time.sleep(ctx.settings.poll_interval_seconds * 2)
    report = sweep.run_sweeps(sweeping(ctx))
    assert report.repolled == 1
    wait_until(lambda: status_of(ctx, job_id) == JobStatus.COMPLETED)

    # And a second sweep finds nothing left to do
    assert sweep.run_sweeps(sweeping(ctx)) == sweep.SweepReport(0, 0, 0, 0)


def test_a_stale_poll_chain_is_retired_by_the_new_one(
    ctx: Context, lossy: Context, account: NewAccount
) -> None:
    job_id = new_job(lossy, account)
    submit(lossy, job_id)
    with ctx.store.begin() as conn:
        old_token = jobs_store.get_job(conn, job_id).poll_token  # type: ignore[union-attr]
    time.sleep(ctx.settings.poll_interval_seconds * 2)
    assert sweep.repoll_stalled(sweeping(lossy)) == 1
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
    assert job is not None and job.poll_token not in (None, old_token)


def test_an_overdue_job_times_out_refunded_with_a_webhook(
    ctx: Context,
    lossy: Context,
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a job that never got going and is older than the maximum wait
    app, url = receiver
    job_id = new_job(lossy, account, webhook_url=url)

    # When the sweep runs after its model's maximum wait has passed
    past_deadline(ctx, job_id)
    report = sweep.run_sweeps(sweeping(ctx))

    # Then the job failed with a timeout, was refunded once, and the receiver was told
    assert report.expired == 1
    (hook,) = app.wait_for(1)
    assert b'"code":"timeout"' in hook.body
    assert status_of(ctx, job_id) == JobStatus.FAILED
    with ctx.store.begin() as conn:
        assert accounts_store.get_account(conn, account.account.id).credits == 50  # type: ignore[union-attr]
        refunds = conn.execute(
            sa.select(sa.func.count()).where(credit_ledger.c.reason == "refund")
        ).scalar_one()
    assert refunds == 1
    assert sweep.run_sweeps(sweeping(ctx)).expired == 0
    # ...and its failure says how long it had waited
    assert b'"elapsed_seconds":' in hook.body


def test_a_delivery_whose_message_was_lost_is_sent(
    ctx: Context,
    lossy: Context,
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a job that completed while Redis could not take the delivery message
    app, url = receiver
    job_id = new_job(lossy, account, webhook_url=url)
    submit(lossy, job_id)

    def finished() -> bool:
        with ctx.store.begin() as conn:
            job = jobs_store.get_job(conn, job_id)
        assert job is not None
        if job.status == JobStatus.PROCESSING:
            poll(lossy, job_id, job.poll_token or "")
        return job.status == JobStatus.COMPLETED

    wait_until(finished)
    assert app.requests == []

    # When the sweep runs, the webhook goes out once
    assert sweep.run_sweeps(sweeping(ctx)).redelivered == 1
    (hook,) = app.wait_for(1)

    def delivered() -> deliveries_store.DeliveryRecord | None:
        with ctx.store.begin() as conn:
            (delivery,) = deliveries_store.deliveries_for_job(conn, job_id)
        return delivery if delivery.status == deliveries_store.DELIVERED else None

    assert hook.headers["webhook-id"] == wait_until(delivered).id


def test_a_duplicated_poll_message_polls_once_and_never_forks_the_chain(
    ctx: Context, lossy: Context, account: NewAccount, simulator: str
) -> None:
    # Given a job at the provider (submission polls it once, in the same message), whose
    # next poll will hit a hiccup (so it stays running)
    job_id = new_job(lossy, account)
    submit(lossy, job_id)
    inject_fault(simulator, on="poll", status=503)
    with ctx.store.begin() as conn:
        first_token = jobs_store.get_job(conn, job_id).poll_token  # type: ignore[union-attr]
    polls_before = stats(simulator)["polls"]

    # When that message is processed twice (Dramatiq delivers at least once)
    poll(lossy, job_id, first_token or "")
    poll(lossy, job_id, first_token or "")

    # Then the provider was asked once, and only the newly issued token is live
    assert stats(simulator)["polls"] == polls_before + 1
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
    assert job is not None and job.poll_token not in (None, first_token)


def test_a_submit_that_finds_its_job_locked_is_retried_not_dropped(
    ctx: Context, lossy: Context, account: NewAccount
) -> None:
    # Given a pending job whose lock another worker holds (its previous attempt, say)
    job_id = new_job(lossy, account)
    with held(ctx.redis, redis_keys.job_lock(job_id), ttl_seconds=30) as mine:
        assert mine

        # When its submit message is processed meanwhile
        submit(ctx, job_id)
        assert status_of(ctx, job_id) == JobStatus.PENDING

    # Then it comes back once the lock is free, and the job completes without any sweep
    wait_until(lambda: status_of(ctx, job_id) == JobStatus.COMPLETED)


def test_a_waiting_retry_is_left_alone_and_a_lost_one_is_sent_once_due(
    ctx: Context, lossy: Context, account: NewAccount, receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given a finished job whose first webhook attempt failed, the retry due in 30 s, and
    # the retry's message lost (the broker is unreachable)
    app, url = receiver
    app.reply(Reply("500 Internal Server Error"))
    slow_retries = dataclasses.replace(
        lossy, settings=lossy.settings.model_copy(update={"webhook_retry_schedule": [0, 30]})
    )
    job_id = new_job(lossy, account, webhook_url=url)
    finish.fail(lossy, job_id, code="provider_failed", message="the render failed")
    (delivery_id,) = delivery_ids(ctx, job_id)
    deliver(slow_retries, delivery_id)
    assert len(app.requests) == 1

    # When the sweep runs before the retry is due, it leaves the delivery alone
    assert sweep.run_sweeps(sweeping(ctx)).redelivered == 0

    # Then once the retry is overdue (moved to the past here), the sweep sends it, once
    with ctx.store.begin() as conn:
        deliveries_store.reschedule(conn, delivery_id, ctx.now() - timedelta(seconds=1))
    assert sweep.run_sweeps(sweeping(ctx)).redelivered == 1
    second = app.wait_for(2)[1]
    assert second.headers["webhook-id"] == delivery_id
    wait_until(lambda: delivery_status(ctx, delivery_id) == deliveries_store.DELIVERED)
    assert sweep.run_sweeps(sweeping(ctx)).redelivered == 0


def delivery_ids(ctx: Context, job_id: str) -> list[str]:
    with ctx.store.begin() as conn:
        return [d.id for d in deliveries_store.deliveries_for_job(conn, job_id)]


def delivery_status(ctx: Context, delivery_id: str) -> str:
    with ctx.store.begin() as conn:
        found = deliveries_store.get_delivery(conn, delivery_id)
    assert found is not None
    return found.status
