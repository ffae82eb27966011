"""Graceful shutdown with the real processes: SIGTERM lets in-flight work finish or hands it
to another worker, within bounds, and ``genhook up`` ends its whole process tree in 20 s.

The worker stories run ``genhook worker`` processes against the test's database and Redis,
with no scheduler and sweeps set an hour apart, so only the worker's own shutdown can explain
what happens to a message it had in flight.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from backend import redis_keys
from backend.accounts import NewAccount
from backend.commands import worker_command
from backend.context import Context
from backend.jobs.create import create_generation
from backend.jobs.finish import fail
from backend.scheduler import STOP_TIMEOUT_SECONDS
from backend.schemas.generations import GenerationCreate
from backend.settings import Settings
from backend.slots import holders
from backend.stack import APPS, STAGE_DEADLINES_SECONDS, STOP_BUDGET_SECONDS
from backend.store import deliveries as deliveries_store
from backend.store.tables import deliveries
from backend.up import WORKER_STOP_OVERHEAD_SECONDS, capped_for_up
from tests.conftest import PG_URL, TEST_SECRET_KEY, wait_until
from tests.support.receiver import Reply, WebhookReceiver
from tests.support.stack import (
    EXTERNAL,
    GENHOOK,
    children_of,
    sessions_alive,
    start_stack,
)
from tests.support.wsgi_server import serve_wsgi

pytestmark = pytest.mark.e2e

#: What a Dramatiq worker may take to exit beyond its shutdown timeout (its processes
#: notice the signal, its consumers stop, its parent notices; each polls about once a second).
WORKER_EXIT_SLACK_SECONDS = 4.0


# --- helpers -------------------------------------------------------------------------


def process_env(ctx: Context, **settings: object) -> dict[str, str]:
    """The environment of a genhook process on the test's database and Redis."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")}
    values: dict[str, object] = {
        "database_url": ctx.settings.effective_database_url,
        "redis_url": ctx.settings.redis_url,
        "secret_key": ctx.settings.secret_key.get_secret_value(),
        "webhook_allowed_networks": "127.0.0.0/8",
        "worker_threads": 2,
        # No sweep runs in these stories, and none would find anything overdue.
        "sweep_interval_seconds": 3600,
        "sweep_stall_seconds": 3600,
        **settings,
    }
    return env | {f"GENHOOK_{name.upper()}": str(value) for name, value in values.items()}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts ``genhook <command>`` processes, each in its own session, logging to
    ``tmp_path/<name>.log``; whatever is left of them is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def run(name: str, command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [str(GENHOOK), *command.split()],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield run
    for process in started:
        for pid in sessions_alive([process.pid]):
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.wait(10)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> float:
    """SIGTERM ``process`` and wait until it and every process of its session are gone;
    returns how long that took."""
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout)
    wait_until(lambda: not sessions_alive([process.pid]), timeout)
    return time.monotonic() - began


def ended_job_with_pending_delivery(ctx: Context, account: NewAccount, url: str) -> str:
    """A generation that has ended (failed) with its webhook delivery to ``url`` queued."""
    request = GenerationCreate(model="kling-v3", prompt="p", webhook_url=url)
    job = create_generation(ctx, account.account.id, request)
    fail(ctx, job.id, code="provider_failed", message="the render failed")
    with ctx.store.begin() as conn:
        (delivery,) = deliveries_store.deliveries_for_job(conn, job.id)
    return delivery.id


def delivery_row(ctx: Context, delivery_id: str) -> dict[str, Any]:
    with ctx.store.begin() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).one()
    return dict(row._mapping)


# --- a worker ------------------------------------------------------------------------


def test_a_stopping_worker_finishes_the_delivery_it_is_making(
    ctx: Context,
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
    tmp_path: Path,
    start: Callable[..., subprocess.Popen[bytes]],
) -> None:
    # Given a worker POSTing a webhook to a receiver that takes 3 s to answer
    app, url = receiver
    app.reply(Reply(delay=3.0))
    delivery_id = ended_job_with_pending_delivery(ctx, account, f"{url}/hook")
    worker = start("worker", "worker", process_env(ctx, worker_shutdown_timeout_seconds=8))
    app.wait_for(1, timeout=20)

    # When the worker gets SIGTERM mid-request
    took = stop(worker)

    # Then it exited within its bound, having finished the delivery first
    assert took < 8 + WORKER_EXIT_SLACK_SECONDS, took
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()
    row = delivery_row(ctx, delivery_id)
    assert row["status"] == deliveries_store.DELIVERED and row["attempt_count"] == 1
    assert len(app.requests) == 1


def test_a_step_longer_than_the_bound_is_requeued_for_another_worker(
    ctx: Context,
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
    tmp_path: Path,
    start: Callable[..., subprocess.Popen[bytes]],
) -> None:
    # Given a delivery worker (its own pool, as genhook up runs it) with a 1 s shutdown
    # bound, POSTing a webhook to a receiver that hangs far longer than that (and than the
    # test), then answers the next request at once
    app, url = receiver
    app.reply(Reply(delay=60.0))
    delivery_id = ended_job_with_pending_delivery(ctx, account, f"{url}/hook")
    env = process_env(ctx, worker_shutdown_timeout_seconds=1, webhook_timeout_seconds=60)
    first = start("first", "worker --queues webhooks", env)
    (hung,) = app.wait_for(1, timeout=20)
    assert holders(ctx.redis, redis_keys.account_slots(account.account.id)) == 1

    # When it gets SIGTERM mid-request
    took = stop(first)

    # Then it exited within its bound, the delivery untouched, its concurrency slots given
    # back with its lock
    assert took < 1 + WORKER_EXIT_SLACK_SECONDS, took
    assert delivery_row(ctx, delivery_id)["attempt_count"] == 0
    assert holders(ctx.redis, redis_keys.account_slots(account.account.id)) == 0

    # And a second worker takes the message at once (no sweep runs, and the first
    # worker's delivery lock is free) and delivers it, with the same webhook-id
    began = time.monotonic()
    start("second", "worker --queues webhooks", env)
    _, again = app.wait_for(2, timeout=15)
    assert again.headers["webhook-id"] == hung.headers["webhook-id"] == delivery_id
    wait_until(lambda: delivery_row(ctx, delivery_id)["status"] == deliveries_store.DELIVERED)
    assert time.monotonic() - began < 15
    # ...as the first worker said it would
    log = (tmp_path / "first.log").read_text()
    assert "requeued for another worker" in log, log


# --- the scheduler -------------------------------------------------------------------


def test_the_scheduler_stops_cleanly_on_sigterm(
    ctx: Context, tmp_path: Path, start: Callable[..., subprocess.Popen[bytes]]
) -> None:
    # Given a running scheduler
    scheduler = start("scheduler", "scheduler", process_env(ctx))
    log = tmp_path / "scheduler.log"
    wait_until(lambda: "recovery sweep every" in log.read_text(), 20)

    # When it gets SIGTERM, then it stops promptly, by itself, and says so
    took = stop(scheduler)
    assert took < 3, took
    assert scheduler.returncode == 0, log.read_text()
    assert "scheduler stopped" in log.read_text()


def test_a_stopping_scheduler_gives_a_hung_run_its_bound_then_frees_its_lock(
    ctx: Context,
    receiver: tuple[WebhookReceiver, str],
    tmp_path: Path,
    start: Callable[..., subprocess.Popen[bytes]],
) -> None:
    # Given a scheduler whose provider health probe hangs (the provider never answers)
    app, url = receiver
    app.reply(Reply(delay=60.0))
    env = process_env(ctx, runway_base_url=url, runway_api_key="key", provider_timeout_seconds=60)
    scheduler = start("scheduler", "scheduler", env)
    app.wait_for(1, timeout=20)
    lock = redis_keys.sweep_lock("provider-health")
    assert ctx.redis.exists(lock)

    # When it gets SIGTERM
    took = stop(scheduler)

    # Then it waits for the probe no longer than its bound, and frees the probe's lock
    assert STOP_TIMEOUT_SECONDS <= took < STOP_TIMEOUT_SECONDS + 3, took
    assert scheduler.returncode == 0
    assert not ctx.redis.exists(lock)
    assert "1 run(s) unfinished" in (tmp_path / "scheduler.log").read_text()


# --- genhook up ----------------------------------------------------------------------


def test_genhook_up_cuts_a_long_worker_bound_to_fit_its_stop() -> None:
    # Given an operator's worker bound longer than genhook up's 20 s stop allows
    long = Settings(worker_shutdown_timeout_seconds=60)

    # Then the worker genhook up starts drains only as long as fits before the first
    # stage's deadline, with Dramatiq's own overhead
    command = worker_command(capped_for_up(long))
    bound = int(command[command.index("--worker-shutdown-timeout") + 1]) / 1000
    assert bound + WORKER_STOP_OVERHEAD_SECONDS <= STAGE_DEADLINES_SECONDS[APPS]
    # ...and the default is kept as it is
    assert capped_for_up(Settings()).worker_shutdown_timeout_seconds == 12


VARIANTS = ["embedded"] + (["postgres+redis"] if PG_URL and EXTERNAL else [])


@pytest.mark.parametrize("variant", VARIANTS)
def test_genhook_up_stops_its_whole_tree_within_20_s_with_work_in_flight(
    variant: str, tmp_path: Path
) -> None:
    # Given a stack whose worker is stuck in a webhook POST (the receiver hangs, and the
    # webhook timeout is longer than the stop budget) and whose API is stuck reading a
    # request body that never comes
    extra = {"GENHOOK_WEBHOOK_TIMEOUT_SECONDS": "60"}
    if variant == "postgres+redis":
        # The shared test database holds secrets sealed with the tests' key.
        extra |= {
            "GENHOOK_DATABASE_URL": PG_URL,
            "GENHOOK_REDIS_URL": EXTERNAL,
            "GENHOOK_SECRET_KEY": TEST_SECRET_KEY,
        }
    receiver = WebhookReceiver()
    receiver.reply(*[Reply(delay=60.0)] * 5)
    with serve_wsgi(receiver) as url:
        stack = start_stack(tmp_path, extra)
        sessions = list(children_of(stack.process.pid))
        try:
            for _ in range(3):
                stack.submit(webhook_url=f"{url}/hook")
            receiver.wait_for(1, timeout=30)
            slow_client = _half_sent_request(stack.base_url, stack.api_key)

            # When genhook up gets SIGTERM
            began = time.monotonic()
            stack.process.send_signal(signal.SIGTERM)
            stack.process.wait(STOP_BUDGET_SECONDS + 10)
            wait_until(lambda: not sessions_alive(sessions), 10)
            took = time.monotonic() - began
        finally:
            _kill(stack.process, sessions)
        slow_client.close()

    # Then it and every process it started are gone within 20 s, each having stopped by
    # itself (nothing was killed at a deadline)
    output = stack.output()
    print(f"genhook up ({variant}) stopped in {took:.1f}s")  # shown with pytest -s
    assert took < STOP_BUDGET_SECONDS, f"stopped in {took:.1f}s\n{output}"
    assert stack.process.returncode == 0 and "genhook: stopped." in output
    assert len(sessions) >= 4 and sessions_alive(sessions) == []
    assert "did not stop in time" not in output, output
    # ...the worker having handed its stuck delivery back rather than lose it
    assert "requeued for another worker" in output, output


def _half_sent_request(base_url: str, api_key: str) -> socket.socket:
    """A client that sends an authenticated POST's headers and then a byte of its body: a
    gunicorn worker waits for the rest until the graceful timeout."""
    address = httpx.URL(base_url)
    client = socket.create_connection((address.host, address.port or 80))
    client.sendall(
        b"POST /v1/video/generations HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {api_key}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    time.sleep(0.5)  # let a worker take it
    return client


def _kill(process: subprocess.Popen[str], sessions: list[int]) -> None:
    """Never leave a stray process of a failed test running."""
    for pid in sessions_alive(sessions):
        os.kill(pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
        process.wait()
