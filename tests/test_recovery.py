"""Back within a minute: the fast recovery pass finds overdue work with cheap queries every
few seconds, at once (no grace) when Redis lost its messages, and when a worker starts;
it leaves alone what is running (locked) or merely waiting (a delayed retry)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import dramatiq
import pytest

from backend import redis_keys
from backend.accounts import NewAccount
from backend.broker import build_broker
from backend.context import Context, use_context
from backend.jobs import finish
from backend.jobs.create import create_generation
from backend.jobs.states import JobStatus
from backend.jobs.sweep import recover_overdue
from backend.locks import held
from backend.queue import Queue
from backend.scheduler import OverdueRecovery
from backend.schemas.generations import GenerationCreate
from backend.store import deliveries as deliveries_store
from backend.store import jobs as jobs_store
from tests.conftest import wait_until


@pytest.fixture
def lossy(ctx: Context) -> Context:
    """The same process, but every enqueue fails as if Redis had lost the message."""
    return dataclasses.replace(ctx, queue=Queue(build_broker("redis://127.0.0.1:1/0")))


def with_settings(ctx: Context, **values: object) -> Context:
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update=values))


def lost_job(lossy: Context, account: NewAccount) -> str:
    """A paid job whose submit message never reached Redis."""
    request = GenerationCreate(model="kling-v3", prompt="p")
    return create_generation(lossy, account.account.id, request).id


def status_of(ctx: Context, job_id: str) -> JobStatus:
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
    assert job is not None
    return job.status


def overdue(ctx: Context, job_id: str, seconds: float) -> None:
    with ctx.store.begin() as conn:
        jobs_store.update_job(conn, job_id, updated_at=ctx.now() - timedelta(seconds=seconds))


@pytest.mark.usefixtures("worker")
def test_a_lost_message_is_recovered_once_overdue_by_the_grace(
    ctx: Context, lossy: Context, account: NewAccount
) -> None:
    job_id = lost_job(lossy, account)
    quick = with_settings(ctx, recovery_grace_seconds=20)

    # Within its grace the job is left alone: its message may just be queued
    overdue(ctx, job_id, 5)
    assert recover_overdue(quick).resubmitted == 0

    # Past it, it is submitted again and completes
    overdue(ctx, job_id, 21)
    assert recover_overdue(quick).resubmitted == 1
    wait_until(lambda: status_of(ctx, job_id) == JobStatus.COMPLETED)


def test_work_a_live_worker_holds_is_not_recovered(
    ctx: Context, lossy: Context, account: NewAccount
) -> None:
    job_id = lost_job(lossy, account)
    overdue(ctx, job_id, 60)
    with held(ctx.redis, redis_keys.job_lock(job_id), ttl_seconds=10) as mine:
        assert mine
        assert recover_overdue(ctx).resubmitted == 0
    assert recover_overdue(ctx).resubmitted == 1


def test_a_delivery_waiting_for_its_retry_is_left_alone(
    ctx: Context, lossy: Context, account: NewAccount
) -> None:
    # Given a finished job's webhook whose next attempt is due in ten minutes
    request = GenerationCreate(model="kling-v3", prompt="p", webhook_url="http://127.0.0.1:9/h")
    job_id = create_generation(lossy, account.account.id, request).id
    finish.fail(lossy, job_id, code="test", message="failed for the test")
    with ctx.store.begin() as conn:
        (delivery,) = deliveries_store.deliveries_for_job(conn, job_id)
        deliveries_store.reschedule(conn, delivery.id, ctx.now() + timedelta(minutes=10))

    # Then the pass leaves it, even with no grace; once it is overdue, it is re-enqueued
    assert recover_overdue(ctx, grace_seconds=0).redelivered == 0
    with ctx.store.begin() as conn:
        deliveries_store.reschedule(conn, delivery.id, ctx.now() - timedelta(minutes=1))
    assert recover_overdue(ctx).redelivered == 1


def test_after_redis_lost_its_messages_everything_due_is_recovered_at_once(
    ctx: Context, lossy: Context, account: NewAccount
) -> None:
    # Given a scheduler whose grace is long, and that already ran once on this Redis
    patient = with_settings(ctx, recovery_grace_seconds=3600)
    recovery = OverdueRecovery()
    recovery(patient)
    job_id = lost_job(lossy, account)

    # When it runs again with Redis as it was, the job is within its grace
    recovery(patient)
    assert status_of(ctx, job_id) == JobStatus.PENDING
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
    assert job is not None
    touched = job.updated_at

    # Then after a FLUSHALL the next pass takes everything due, grace or not
    ctx.redis.flushdb()
    recovery(patient)
    with ctx.store.begin() as conn:
        job = jobs_store.get_job(conn, job_id)
    assert job is not None and job.updated_at > touched, "resubmitted (and touched)"


def test_a_starting_worker_runs_a_recovery_pass(
    ctx: Context, lossy: Context, account: NewAccount
) -> None:
    # Given a job lost while no worker ran, overdue by more than the grace
    job_id = lost_job(lossy, account)
    overdue(ctx, job_id, 60)
    starting = with_settings(ctx, recovery_on_worker_start=True)
    use_context(starting)

    # When a worker starts, and nothing else runs a pass
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        # Then the job is submitted and completes
        wait_until(lambda: status_of(ctx, job_id) == JobStatus.COMPLETED)
    finally:
        worker.stop(timeout=10_000)
        broker.middleware[:] = [
            m for m in broker.middleware if type(m).__name__ != "_WorkerMiddleware"
        ]
        use_context(ctx)
