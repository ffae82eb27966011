"""Isolation between tenants: what one account does never slows or breaks another's work.

Webhooks (issue 11, finding 2): an account whose many endpoints point at servers that
accept and never answer used to hold every worker thread, so another tenant's job stalled
for minutes. Deliveries now run on their own worker pool, and each account (and each of
its destinations) has a cap of webhooks in flight, held in Redis across processes.

Real Redis, SQLite and PostgreSQL, real Dramatiq workers laid out as ``genhook up`` runs
them, and real receivers on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import dramatiq
import pytest
import redis
import sqlalchemy as sa
from falcon import testing

from backend import redis_keys
from backend.accounts import NewAccount, create_account
from backend.broker import build_broker
from backend.commands import worker_command
from backend.context import Context
from backend.jobs.create import create_generation
from backend.jobs.deliver import deliver
from backend.jobs.finish import fail
from backend.locks import release_held_by
from backend.queue import JOBS_QUEUE, WEBHOOKS_QUEUE, Queue
from backend.schemas.generations import GenerationCreate
from backend.settings import Settings
from backend.slots import Slot, holders, slot, slots, slots_and_value
from backend.store import deliveries as deliveries_store
from backend.store.tables import deliveries
from backend.webhooks import fairness
from backend.webhooks.fairness import destination_key
from backend.worker_pools import pool_for, pools
from tests.conftest import make_settings, wait_until
from tests.support.api import submit, wait_for_status
from tests.support.receiver import WebhookReceiver
from tests.support.silent_server import SilentServer, silent_server
from tests.support.wsgi_server import serve_wsgi

#: The caps these tests run with: a delivery pool of 4 threads, at most 2 of them for one
#: account, at most 1 for one of its destinations.
DELIVERY_THREADS = 4
ACCOUNT_CAP = 2
DESTINATION_CAP = 1
#: Each attempt at a server that never answers holds its thread this long.
WEBHOOK_TIMEOUT_SECONDS = 1.5


@pytest.fixture
def settings(database_url: str, redis_url: str, simulator: str) -> Settings:
    return make_settings(
        database_url,
        redis_url,
        simulator,
        webhook_timeout_seconds=WEBHOOK_TIMEOUT_SECONDS,
        worker_threads=2,
        webhook_worker_threads=DELIVERY_THREADS,
        webhook_account_concurrency=ACCOUNT_CAP,
        webhook_destination_concurrency=DESTINATION_CAP,
    )


@pytest.fixture
def pool_workers(ctx: Context) -> Iterator[list[dramatiq.Worker]]:
    """One real Dramatiq worker (threads in this process) per pool, as ``genhook up`` runs
    them: each consumes only its pool's queues, with its pool's threads."""
    broker = dramatiq.get_broker()
    workers = [
        dramatiq.Worker(
            broker, queues=set(pool.queues) or None, worker_threads=pool.threads, worker_timeout=50
        )
        for pool in pools(ctx.settings)
    ]
    for worker in workers:
        worker.start()
    yield workers
    for worker in workers:
        worker.stop(timeout=10_000)
    broker.middleware[:] = [m for m in broker.middleware if type(m).__name__ != "_WorkerMiddleware"]


@pytest.fixture
def lossy(ctx: Context) -> Context:
    """The same process, but every enqueue fails: the test decides when a delivery runs."""
    return dataclasses.replace(ctx, queue=Queue(build_broker("redis://127.0.0.1:1/0")))


@pytest.fixture
def silent_servers() -> Iterator[list[SilentServer]]:
    """Four servers (four destinations) that accept and never answer."""
    with ExitStack() as stack:
        yield [stack.enter_context(silent_server()) for _ in range(4)]


def bearer(account: NewAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}


def create_endpoint(api: testing.TestClient, auth: dict[str, str], url: str) -> None:
    result = api.simulate_post("/v1/webhook-endpoints", json={"url": url}, headers=auth)
    assert result.status_code == 201, result.text


def pending_delivery(ctx: Context, account: NewAccount, url: str) -> str:
    """A generation that has ended with a pending delivery to ``url``; its delivery id."""
    request = GenerationCreate(model="kling-v3", prompt="p", webhook_url=url)
    job = create_generation(ctx, account.account.id, request)
    fail(ctx, job.id, code="provider_failed", message="the render failed")
    with ctx.store.begin() as conn:
        (delivery,) = deliveries_store.deliveries_for_job(conn, job.id)
    return delivery.id


def delivery_row(ctx: Context, delivery_id: str) -> Any:
    with ctx.store.begin() as conn:
        return conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).one()


# --- one tenant's hanging receivers against another tenant's job ----------------------


def flood_with_hanging_webhooks(
    api: testing.TestClient, account: NewAccount, servers: list[SilentServer]
) -> None:
    """Account A's 20 endpoints on servers that never answer, and a finished job: 20
    deliveries, each attempt of which holds a thread for the whole webhook timeout."""
    for i in range(20):
        create_endpoint(api, bearer(account), f"{servers[i % len(servers)].url}/hook/{i}")
    job = submit(api, bearer(account))
    wait_for_status(api, bearer(account), job["id"], "completed")
    # The hanging attempts have begun
    wait_until(lambda: sum(server.accepted for server in servers) >= 2)


@pytest.mark.usefixtures("pool_workers")
def test_a_tenants_hanging_receivers_do_not_delay_another_tenants_job_or_webhook(
    ctx: Context,
    api: testing.TestClient,
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
    silent_servers: list[SilentServer],
) -> None:
    # Given account A's 20 webhooks hanging on servers that never answer (with one shared
    # pool of 4 threads they held every thread for about 20 x 3 x 1.5 s / 4 = 22 s)
    flood_with_hanging_webhooks(api, account, silent_servers)
    app, url = receiver
    other = create_account(ctx, "tenant-b@example.com")

    # When account B submits a job with a webhook to a receiver that answers at once
    began = time.monotonic()
    job = submit(api, bearer(other), webhook_url=f"{url}/b")

    # Then B's job finishes and its webhook arrives about as fast as on an idle system
    # (under a second here; 10 s and more with one shared pool and no caps), while A's
    # webhooks are still hanging
    wait_for_status(api, bearer(other), job["id"], "completed")
    received = app.wait_for(1, timeout=10)
    took = time.monotonic() - began
    assert took < 5, took
    assert received[0].path == "/b"
    # ...and A never holds more than its cap of the delivery pool's threads
    assert holders(ctx.redis, redis_keys.account_slots(account.account.id)) <= ACCOUNT_CAP


@pytest.fixture
def uncapped(ctx: Context) -> Context:
    """The caps as wide as the pool: only the separate pools stand between the tenants."""
    changed = ctx.settings.model_copy(
        update={"webhook_account_concurrency": 100, "webhook_destination_concurrency": 100}
    )
    from backend.context import use_context

    wide = dataclasses.replace(ctx, settings=changed)
    use_context(wide)
    return wide


@pytest.mark.usefixtures("uncapped", "pool_workers")
def test_jobs_never_wait_for_threads_held_by_webhooks(
    ctx: Context,
    api: testing.TestClient,
    account: NewAccount,
    silent_servers: list[SilentServer],
) -> None:
    # Given every delivery thread held by account A's hanging webhooks
    flood_with_hanging_webhooks(api, account, silent_servers)
    wait_until(lambda: sum(server.accepted for server in silent_servers) >= DELIVERY_THREADS)
    other = create_account(ctx, "tenant-b@example.com")

    # When account B submits a job, Then it finishes in the time a render takes, because
    # job steps run on their own pool
    began = time.monotonic()
    job = submit(api, bearer(other))
    wait_for_status(api, bearer(other), job["id"], "completed")
    took = time.monotonic() - began
    assert took < 4, took


def test_jobs_and_deliveries_have_their_own_pools_and_sizes(settings: Settings) -> None:
    # The layout genhook up runs: one worker per pool, each with its own settings
    jobs, webhooks = pools(settings)
    assert (jobs.queues, jobs.threads) == ((JOBS_QUEUE,), 2)
    assert (webhooks.queues, webhooks.threads) == ((WEBHOOKS_QUEUE,), DELIVERY_THREADS)
    command = worker_command(settings, [WEBHOOKS_QUEUE])
    assert command[command.index("--threads") + 1] == str(DELIVERY_THREADS)
    assert command[command.index("--queues") + 1 :] == [WEBHOOKS_QUEUE]
    # ...and genhook worker alone serves every queue from one pool
    everything = worker_command(settings)
    assert "--queues" not in everything and pool_for(settings).queues == ()
    with pytest.raises(ValueError, match="unknown queue"):
        pool_for(settings, ["mail"])


# --- the caps, one delivery at a time --------------------------------------------------


def test_an_account_at_its_cap_waits_while_another_account_sends(
    ctx: Context, lossy: Context, account: NewAccount, receiver: tuple[WebhookReceiver, str]
) -> None:
    app, url = receiver
    other = create_account(ctx, "tenant-b@example.com")
    mine = pending_delivery(lossy, account, f"{url}/a")
    theirs = pending_delivery(lossy, other, f"{url}/b")
    due = delivery_row(ctx, mine).next_attempt_at

    # Given account A already has its cap of webhooks in flight (in other workers)
    with ExitStack() as in_flight:
        key = redis_keys.account_slots(account.account.id)
        for _ in range(ACCOUNT_CAP):
            assert in_flight.enter_context(slot(ctx.redis, key, ACCOUNT_CAP, 10))

        # When a webhook of A and one of B come up
        deliver(lossy, mine)
        deliver(lossy, theirs)

        # Then B's is sent; A's is not sent, not counted as an attempt, and put off
        assert [request.path for request in app.requests] == ["/b"]
        held_back = delivery_row(ctx, mine)
        assert held_back.status == "pending" and held_back.attempt_count == 0
        assert held_back.next_attempt_at > due

    # When A's other webhooks are done, its own goes on its next try
    deliver(lossy, mine)
    assert [request.path for request in app.requests] == ["/b", "/a"]
    assert delivery_row(ctx, mine).status == "delivered"
    assert holders(ctx.redis, redis_keys.account_slots(account.account.id)) == 0


def test_one_slow_destination_of_an_account_holds_up_neither_its_others_nor_other_tenants(
    ctx: Context, lossy: Context, account: NewAccount, receiver: tuple[WebhookReceiver, str]
) -> None:
    app, url = receiver
    other = create_account(ctx, "tenant-b@example.com")
    with serve_wsgi(app) as second:
        to_busy = pending_delivery(lossy, account, f"{url}/busy")
        to_other = pending_delivery(lossy, account, f"{second}/other")
        theirs = pending_delivery(lossy, other, f"{url}/theirs")

        # Given account A's destination host:port already has its cap in flight
        key = destination_key(account.account.id, f"{url}/anything")
        with slot(ctx.redis, key, DESTINATION_CAP, 10) as taken:
            assert taken
            for delivery_id in (to_busy, to_other, theirs):
                deliver(lossy, delivery_id)

        # Then only A's webhook to that destination waits: A's other destination and
        # another tenant's webhook to the same host:port are sent
        assert sorted(request.path for request in app.requests) == ["/other", "/theirs"]
        assert delivery_row(ctx, to_busy).attempt_count == 0
        deliver(lossy, to_busy)
        assert delivery_row(ctx, to_busy).status == "delivered"


# --- the Redis semaphore under the caps -----------------------------------------------


def test_a_cap_holds_across_processes(ctx: Context) -> None:
    # Given two processes' Redis clients sharing a cap of 2
    first, second = ctx.redis, redis.Redis.from_url(ctx.settings.require_redis_url())
    key = "genhook:slots:test"
    with slot(first, key, 2, 10) as one, slot(second, key, 2, 10) as two:
        assert one and two
        # Then a third holder anywhere is refused at once
        with slot(second, key, 2, 10) as three:
            assert not three
    # And the slots are given back when their holders finish
    assert holders(first, key) == 0
    with slot(second, key, 2, 10) as again:
        assert again


def test_a_holder_that_dies_frees_its_slot_within_its_ttl(ctx: Context) -> None:
    # Given a holder that took the only slot and died (it never renews nor releases)
    key = "genhook:slots:test"
    assert Slot(ctx.redis, key, 1, 0.3).acquire()
    with slot(ctx.redis, key, 1, 10) as blocked:
        assert not blocked

    # Then the slot is free again once the hold's TTL is over
    time.sleep(0.4)
    with slot(ctx.redis, key, 1, 10) as taken:
        assert taken


def test_a_live_holder_keeps_its_slot_however_long_it_works(ctx: Context) -> None:
    # Given a holder working twice its slot's TTL (renewed every third of it, give or
    # take the renewer's quarter-second tick)
    key = "genhook:slots:test"
    with slot(ctx.redis, key, 1, 0.9) as taken:
        assert taken
        for _ in range(2):
            time.sleep(0.9)
            # Then nobody else gets the slot meanwhile
            with slot(ctx.redis, key, 1, 0.9) as other:
                assert not other
    with slot(ctx.redis, key, 1, 0.9) as after:
        assert after


def test_a_stopping_worker_gives_back_the_slots_of_its_unfinished_steps(ctx: Context) -> None:
    # Given a worker thread stuck in a step that holds a slot
    key = "genhook:slots:test"
    taken, finish = threading.Event(), threading.Event()

    def step() -> None:
        with slot(ctx.redis, key, 1, 10):
            taken.set()
            finish.wait(5)

    thread = threading.Thread(target=step)
    thread.start()
    taken.wait(5)
    assert holders(ctx.redis, key) == 1

    # When the worker stops and releases what its unfinished steps hold
    assert thread.ident is not None
    assert release_held_by([thread.ident]) == 1

    # Then the slot is free at once, for another worker
    assert holders(ctx.redis, key) == 0
    finish.set()
    thread.join(5)


def test_both_slots_are_taken_or_neither(ctx: Context) -> None:
    # Given a destination whose one slot is taken
    account_key, destination = "genhook:slots:test-account", "genhook:slots:test-destination"
    with slot(ctx.redis, destination, 1, 10) as taken:
        assert taken
        # When a delivery asks for a slot of its account and of that destination
        with slots(ctx.redis, [account_key, destination], [2, 1], 10) as refused:
            # Then it is refused by the destination, and holds no slot of its account either
            assert refused == 2
            assert holders(ctx.redis, account_key) == 0
    with slots(ctx.redis, [account_key, destination], [2, 1], 10) as refused:
        assert refused == 0
        assert holders(ctx.redis, account_key) == holders(ctx.redis, destination) == 1
    assert holders(ctx.redis, account_key) == holders(ctx.redis, destination) == 0


def test_a_delivery_over_its_destination_cap_is_sent_when_a_slot_frees_within_its_wait(
    ctx: Context,
    lossy: Context,
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wait far longer than the release takes, so that the test does not race the clock
    monkeypatch.setattr(fairness, "DESTINATION_WAIT_SECONDS", 30.0)
    app, url = receiver
    waiting = pending_delivery(lossy, account, f"{url}/waiting")
    key = destination_key(account.account.id, f"{url}/anything")

    # Given the destination's only slot is held by another send, which ends once the
    # delivery is waiting for it
    hold = Slot(ctx.redis, key, DESTINATION_CAP, 10)
    assert hold.acquire()

    def end_the_other_send() -> None:
        wait_until(lambda: _blocked_clients(ctx) >= 1, timeout=10)
        hold.release()

    releaser = threading.Thread(target=end_the_other_send)
    releaser.start()

    # When the delivery comes up
    deliver(lossy, waiting)
    releaser.join(timeout=10)

    # Then it is sent on that release, in this same attempt, not put off
    assert [request.path for request in app.requests] == ["/waiting"]
    row = delivery_row(ctx, waiting)
    assert row.status == "delivered" and row.attempt_count == 1
    assert holders(ctx.redis, key) == 0


def _blocked_clients(ctx: Context) -> int:
    """Clients of this test's Redis database blocked waiting for a slot's release."""
    db = ctx.redis.connection_pool.connection_kwargs.get("db", 0)
    return sum(
        1
        for client in ctx.redis.client_list()
        if client.get("cmd") == "blpop" and int(client.get("db", -1)) == int(db)
    )


def test_a_write_made_with_the_release_is_done_once_the_slots_are_given_back(
    ctx: Context,
) -> None:
    # Given a held pair of slots with a write to make on release
    keys = ["genhook:slots:test-account", "genhook:slots:test-destination"]
    with slots_and_value(ctx.redis, keys, [2, 1], 10, read="genhook:test:record") as taken:
        refused, value, hold = taken
        assert refused == 0 and value is None and hold is not None
        hold.write_on_release("genhook:test:record", "dlv_1#1", 60)
        # Then nothing is written while they are held
        assert ctx.redis.get("genhook:test:record") is None
    # And on release the slots are free and the value is written, once (SET NX)
    assert hold.released
    assert ctx.redis.get("genhook:test:record") == b"dlv_1#1"
    assert holders(ctx.redis, keys[0]) == holders(ctx.redis, keys[1]) == 0
