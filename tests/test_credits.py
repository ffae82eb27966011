"""Credits: debited atomically with the job insert, refunded exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa
from falcon import testing

from backend.accounts import NewAccount
from backend.api.app import create_app
from backend.context import Context
from backend.jobs import finish
from backend.jobs.states import JobStatus
from backend.store import accounts as accounts_store
from backend.store.jobs import transition
from backend.store.tables import credit_ledger, jobs
from tests.support.wsgi_server import serve_wsgi

PRICE = 3  # kling-v3, 5 s


def ledger_rows(ctx: Context, account_id: str) -> list[sa.Row]:
    with ctx.store.begin() as conn:
        return list(
            conn.execute(sa.select(credit_ledger).where(credit_ledger.c.account_id == account_id))
        )


def test_parallel_submissions_never_overdraw(ctx: Context, account: NewAccount) -> None:
    # Given an account with 50 credits and the API on a real threaded HTTP server
    headers = {"Authorization": f"Bearer {account.api_key}"}
    body = {"model": "kling-v3", "prompt": "a listing walkthrough", "duration": "5s"}

    # When 100 submissions race each other
    with serve_wsgi(create_app(ctx)) as base_url, httpx.Client(timeout=60) as client:

        def post(_: int) -> int:
            return client.post(
                f"{base_url}/v1/video/generations", json=body, headers=headers
            ).status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(post, range(100)))

    # Then exactly as many are accepted as 50 credits pay for, the rest get 402
    accepted = 50 // PRICE
    assert statuses.count(202) == accepted
    assert statuses.count(402) == 100 - accepted

    # And balance, jobs and ledger agree
    with ctx.store.begin() as conn:
        found = accounts_store.get_account(conn, account.account.id)
        job_count = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
        assert found is not None
        assert found.credits == 50 - accepted * PRICE >= 0
        assert accounts_store.ledger_balance(conn, found.id) == found.credits
    assert job_count == accepted
    debits = [r for r in ledger_rows(ctx, account.account.id) if r.reason == "debit"]
    assert len(debits) == accepted and all(r.delta == -PRICE for r in debits)


def test_a_failed_job_is_refunded_exactly_once(
    ctx: Context, account: NewAccount, api: testing.TestClient, auth: dict[str, str]
) -> None:
    # Given a submitted (not yet processed) job
    job_id = api.simulate_post(
        "/v1/video/generations",
        json={"model": "kling-v3", "prompt": "p", "duration": "5s"},
        headers=auth,
    ).json["id"]

    # When it is failed twice, concurrently and then again (duplicate messages, sweeps)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda _: finish.fail(ctx, job_id, code="timeout", message="t"), range(4))
        )
    finish.fail(ctx, job_id, code="timeout", message="again")

    # Then only one of them failed it, and one refund exists
    assert sum(r is not None for r in results) == 1
    refunds = [r for r in ledger_rows(ctx, account.account.id) if r.reason == "refund"]
    assert [r.delta for r in refunds] == [PRICE]
    with ctx.store.begin() as conn:
        found = accounts_store.get_account(conn, account.account.id)
    assert found is not None and found.credits == 50


def test_a_completed_job_cannot_be_refunded(
    ctx: Context, account: NewAccount, api: testing.TestClient, auth: dict[str, str]
) -> None:
    job_id = api.simulate_post(
        "/v1/video/generations",
        json={"model": "kling-v3", "prompt": "p", "duration": "10s"},
        headers=auth,
    ).json["id"]
    with ctx.store.begin() as conn:  # move it along as a submission would
        transition(conn, job_id, JobStatus.PROCESSING, provider_job_id="rnd_x")
    assert finish.complete(ctx, job_id, output_url="http://cdn.example/v.mp4") is not None

    assert finish.fail(ctx, job_id, code="timeout", message="late") is None
    assert not [r for r in ledger_rows(ctx, account.account.id) if r.reason == "refund"]
