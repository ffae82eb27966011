"""Edges of failover, timeouts, cancel and kept outputs, one step at a time without a worker,
on a hand-moved simulator clock (each test catches a mutation the other tests let through)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from falcon import testing

from backend import redis_keys
from backend.accounts import NewAccount
from backend.context import Context
from backend.errors import OutputCopyFailed
from backend.jobs import credits, events, sweep
from backend.jobs.create import create_generation
from backend.jobs.poll import _record_render_time, poll
from backend.jobs.routes import plan_of
from backend.jobs.states import JobStatus
from backend.jobs.submit import submit
from backend.jobs.view import to_webhook_payload
from backend.providers.health import RouteHealth
from backend.schemas.generations import GenerationCreate
from backend.settings import Settings
from backend.simulator.app import create_app as create_simulator
from backend.simulator.credentials import all_provider_settings
from backend.storage.copy import copy_output
from backend.storage.files import FileStore
from backend.store import jobs as jobs_store
from backend.store import provider_tasks as tasks_store
from backend.store.jobs import JobRecord
from backend.store.tables import credit_ledger
from backend.webhooks.guarded_transport import guarded_client
from tests.conftest import LOOPBACK, make_settings
from tests.support.api import GENERATIONS
from tests.support.faults import CONTROL_TOKEN, inject_fault, renders
from tests.support.wsgi_server import serve_wsgi

RENDER = 60.0


@pytest.fixture
def clock() -> list[float]:
    return [0.0]


@pytest.fixture
def simulator(clock: list[float]) -> Iterator[str]:
    with serve_wsgi(
        create_simulator(render_seconds=RENDER, clock=lambda: clock[0], control_token=CONTROL_TOKEN)
    ) as url:
        yield url


@pytest.fixture
def settings(database_url: str, redis_url: str, simulator: str, tmp_path: Path) -> Settings:
    return make_settings(
        database_url, redis_url, simulator, simulator_fallback=False,
        poll_max_transient_failures=1, storage_url=f"file://{tmp_path}/outputs",
        **all_provider_settings(simulator),
    )  # fmt: skip


def new_job(ctx: Context, account: NewAccount, model: str = "kling-v3", go: bool = True) -> str:
    job_id = create_generation(ctx, account.account.id, GenerationCreate(model=model, prompt="p")).id  # fmt: skip  # noqa: E501
    if go:
        submit(ctx, job_id)
    return job_id


def job(ctx: Context, job_id: str) -> JobRecord:
    with ctx.store.begin() as conn:
        return jobs_store.get_job(conn, job_id)  # type: ignore[return-value]


def update(ctx: Context, job_id: str, **changes: object) -> None:
    with ctx.store.begin() as conn:
        jobs_store.update_job(conn, job_id, **changes)


def poll_once(ctx: Context, job_id: str) -> None:
    poll(ctx, job_id, job(ctx, job_id).poll_token)  # type: ignore[arg-type]


def render_status(simulator: str) -> str:
    [render] = renders(simulator)
    return str(render["status"])


def a_second_ago(ctx: Context) -> object:
    return ctx.now() - timedelta(seconds=1)


def cancel(api: testing.TestClient, account: NewAccount, job_id: str) -> None:
    auth = {"Authorization": f"Bearer {account.api_key}"}
    assert api.simulate_post(f"{GENERATIONS}/{job_id}/cancel", headers=auth).status_code == 200


@pytest.mark.parametrize(("kind", "times"), [("server_error", 2), ("auth", 1)])  # M05, M39
def test_a_task_abandoned_mid_render_is_canceled_at_its_provider(
    ctx: Context, account: NewAccount, simulator: str, kind: str, times: int
) -> None:
    job_id = new_job(ctx, account, "runway-gen4.5")
    inject_fault(simulator, on="poll", kind=kind, dialect="runway", times=times)
    for _ in range(times):
        poll_once(ctx, job_id)
    assert (job(ctx, job_id).status, job(ctx, job_id).route_index) == (JobStatus.PENDING, 1)
    assert render_status(simulator) == "canceled"


def test_a_capacity_failure_mid_render_counts_against_the_routes_breaker(  # M08
    ctx: Context, account: NewAccount, simulator: str, clock: list[float]
) -> None:
    inject_fault(simulator, on="render", kind="capacity", dialect="kling")
    job_id = new_job(ctx, account)
    clock[0] = RENDER - 1
    poll_once(ctx, job_id)
    [view] = RouteHealth(ctx.redis, ctx.settings).snapshot(["kling/kling-v3"], ctx.now())
    assert (view.consecutive_failures, view.last_error) == (1, "capacity")


def test_mid_render_with_every_cheaper_route_cooling_the_first_is_tried_anyway(  # M33
    ctx: Context, account: NewAccount, simulator: str, clock: list[float]
) -> None:
    inject_fault(simulator, on="render", kind="capacity", dialect="kling")
    job_id = new_job(ctx, account)
    health = RouteHealth(ctx.redis, ctx.settings)
    for hop in plan_of(job(ctx, job_id).route_plan)[1:]:
        for _ in range(ctx.settings.provider_breaker_failures):
            health.record_failure(hop.key, "server_error", ctx.now())
    clock[0] = RENDER - 1
    poll_once(ctx, job_id)
    assert (job(ctx, job_id).status, job(ctx, job_id).route_index) == (JobStatus.PENDING, 1)


def test_the_poll_actor_times_out_an_overdue_job_and_stops_its_render(  # M12, M40
    ctx: Context, account: NewAccount, simulator: str
) -> None:
    job_id = new_job(ctx, account, "runway-gen4.5")
    update(ctx, job_id, deadline_at=a_second_ago(ctx))
    poll_once(ctx, job_id)
    assert job(ctx, job_id).error["code"] == "timeout"  # type: ignore[index]
    assert render_status(simulator) == "canceled"


def test_the_sweep_never_expires_a_job_whose_output_is_being_copied(  # M13
    ctx: Context, account: NewAccount
) -> None:
    job_id = new_job(ctx, account, "runway-gen4.5")
    update(ctx, job_id, provider_output_url="http://127.0.0.1:9/v.mp4", deadline_at=a_second_ago(ctx))  # fmt: skip  # noqa: E501
    assert sweep.expire_overdue(ctx) == 0 and job(ctx, job_id).status == JobStatus.PROCESSING


def test_every_read_signs_the_output_link_afresh_from_cache_and_database(  # M18, M19
    ctx: Context, api: testing.TestClient, account: NewAccount, clock: list[float]
) -> None:
    job_id = new_job(ctx, account)
    clock[0] = RENDER + 1
    poll_once(ctx, job_id)  # rendered, copied, completed
    auth = {"Authorization": f"Bearer {account.api_key}"}

    def expires() -> int:
        result = api.simulate_get(f"{GENERATIONS}/{job_id}", headers=auth)
        return int(httpx.URL(result.json["output_url"]).params["expires"])

    first = expires()
    time.sleep(1.1)
    from_cache = expires()
    ctx.redis.delete(redis_keys.job_status(job_id))
    time.sleep(1.1)
    assert first < from_cache < expires()


def test_a_second_refund_of_a_job_gives_nothing(ctx: Context, account: NewAccount) -> None:  # M22
    record = job(ctx, new_job(ctx, account, go=False))  # read once, as racing workers would
    for expected in (True, False):
        with ctx.store.begin() as conn:
            assert credits.refund(conn, record) is expected
    with ctx.store.begin() as conn:
        query = sa.select(credit_ledger.c.reason).where(credit_ledger.c.job_id == record.id)
        assert sorted(conn.execute(query).scalars()) == ["debit", "refund"]


def test_canceling_while_the_output_is_copied_sends_the_provider_nothing(  # M23
    ctx: Context, api: testing.TestClient, account: NewAccount, simulator: str
) -> None:
    job_id = new_job(ctx, account, "runway-gen4.5")
    update(ctx, job_id, provider_output_url="http://127.0.0.1:9/v.mp4")
    cancel(api, account, job_id)
    assert render_status(simulator) != "canceled"  # no DELETE reached Runway


def test_a_running_task_byteplus_declines_to_cancel_stays_abandoned(  # M35
    ctx: Context, api: testing.TestClient, account: NewAccount, simulator: str, clock: list[float]
) -> None:
    job_id = new_job(ctx, account, "seedance-1-pro")
    clock[0] = RENDER / 2  # running: Ark refuses to cancel it
    cancel(api, account, job_id)
    with ctx.store.begin() as conn:
        assert [t.state.value for t in tasks_store.tasks_of_job(conn, job_id)] == ["abandoned"]


def test_a_status_changed_payload_carries_progress_and_eta(  # M25, M26
    ctx: Context, account: NewAccount
) -> None:
    job_id = new_job(ctx, account, go=False)
    update(ctx, job_id, progress=42.04, eta_seconds=12.34)
    payload = to_webhook_payload(job(ctx, job_id), events.STATUS_CHANGED)
    assert (payload.progress, payload.eta_seconds) == (42.0, 12.3)


def test_the_render_time_recorded_is_the_middle_of_the_last_poll_gap(  # M29
    ctx: Context, account: NewAccount
) -> None:
    job_id, now = new_job(ctx, account, go=False), ctx.now()
    update(ctx, job_id, submitted_at=now - timedelta(seconds=100), last_polled_at=now - timedelta(seconds=20))  # fmt: skip  # noqa: E501
    done = job(ctx, job_id)
    _record_render_time(ctx, done)
    key = redis_keys.render_history("kling-v3", f"{done.provider}/{done.provider_model}")
    assert float(ctx.redis.hget(key, "mean")) == pytest.approx(90.0, abs=0.5)  # type: ignore[arg-type]


def test_a_redirect_to_a_non_http_url_fails_the_copy_for_good(tmp_path: Path) -> None:  # M37
    def app(environ: object, start_response: Callable[..., object]) -> list[bytes]:
        start_response("302 Found", [("Location", "ftp://127.0.0.1/v.mp4")])
        return [b""]

    with (
        serve_wsgi(app) as url,
        guarded_client(LOOPBACK) as client,
        pytest.raises(OutputCopyFailed, match="non-http") as failure,
    ):
        copy_output(client, f"{url}/v.mp4", FileStore(tmp_path), "k", max_bytes=1 << 20)
    assert failure.value.retryable is False
