"""``Idempotency-Key`` on POST /v1/video/generations and POST /v1/signup: a client that lost
an answer retries and gets it again, with no second job, charge or account."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import sqlalchemy as sa
from falcon import testing

from backend.accounts import NewAccount, create_account
from backend.api.app import create_app
from backend.context import Context
from backend.jobs.sweep import forget_idempotency_keys
from backend.store import accounts as accounts_store
from backend.store.tables import accounts, idempotency_keys, jobs
from tests.support.api import GENERATION, GENERATIONS
from tests.support.ledger import balance
from tests.support.wsgi_server import serve_wsgi


def post(api: testing.TestClient, auth: dict[str, str], key: str, **fields: object):  # type: ignore[no-untyped-def]
    return api.simulate_post(
        GENERATIONS, json={**GENERATION, **fields}, headers={**auth, "Idempotency-Key": key}
    )


def job_count(ctx: Context, account: NewAccount) -> int:
    with ctx.store.begin() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(jobs.c.account_id == account.account.id)
            ).scalar_one()
        )


def test_the_same_key_and_body_answer_the_first_response_and_charge_once(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    # Given a generation submitted with a key
    before = balance(ctx, account)
    first = post(api, auth, "order-7781-video")
    assert first.status_code == 202, first.text
    assert first.headers.get("Idempotent-Replayed") is None

    # When the client, having lost the answer, sends it again
    again = post(api, auth, "order-7781-video")

    # Then it gets the very same answer, marked as replayed, and nothing more happened
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.text == first.text
    assert again.headers["Location"] == first.headers["Location"]
    assert job_count(ctx, account) == 1
    assert balance(ctx, account) == before - first.json["credits"]


def test_the_same_key_with_another_body_is_a_422_naming_the_header(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    assert post(api, auth, "k-1").status_code == 202

    other = post(api, auth, "k-1", prompt="something else entirely")

    assert other.status_code == 422
    assert [e["field"] for e in other.json["errors"]] == ["Idempotency-Key"]
    assert "different request body" in other.json["detail"]
    assert job_count(ctx, account) == 1


def test_keys_belong_to_their_account(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    mine = post(api, auth, "shared-key")
    other = create_account(ctx, "other@example.com")
    theirs = post(api, {"Authorization": f"Bearer {other.api_key}"}, "shared-key")

    assert theirs.status_code == 202 and theirs.headers.get("Idempotent-Replayed") is None
    assert theirs.json["id"] != mine.json["id"]
    assert job_count(ctx, other) == 1


def test_concurrent_requests_with_one_key_make_exactly_one_job(
    ctx: Context, auth: dict[str, str], account: NewAccount
) -> None:
    # Given the API on a real threaded server, and ten clients racing with one key
    with serve_wsgi(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=30) as client:

        def send(_: int) -> httpx.Response:
            return client.post(
                GENERATIONS, json=GENERATION, headers={**auth, "Idempotency-Key": "race"}
            )

        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(send, range(10)))

    # Then every one got the same 202, and the database holds one job and one charge
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 9
    assert job_count(ctx, account) == 1
    assert balance(ctx, account) == account.account.credits - answers[0].json()["credits"]


def test_a_refused_request_is_not_remembered(ctx: Context) -> None:
    # Given an account that cannot pay
    broke = create_account(ctx, "broke@example.com", credits=0)
    api = testing.TestClient(create_app(ctx))
    auth = {"Authorization": f"Bearer {broke.api_key}"}
    assert post(api, auth, "retry-me").status_code == 402

    # When it is topped up and the same request is sent with the same key
    with ctx.store.begin() as conn:
        accounts_store.add_credits(conn, broke.account.id, 100)
        accounts_store.add_ledger_entry(
            conn, account_id=broke.account.id, job_id=None, delta=100, reason="grant"
        )
    accepted = post(api, auth, "retry-me")

    # Then it is done this time
    assert accepted.status_code == 202
    assert accepted.headers.get("Idempotent-Replayed") is None


def test_a_key_is_remembered_for_its_ttl_only(
    ctx: Context, auth: dict[str, str], account: NewAccount
) -> None:
    short = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"idempotency_ttl_seconds": 60})
    )
    api = testing.TestClient(create_app(short))
    first = post(api, auth, "daily")
    assert post(api, auth, "daily").headers["Idempotent-Replayed"] == "true"

    # When its time is up (the clock moved on by rewriting the row's expiry)
    with ctx.store.begin() as conn:
        conn.execute(idempotency_keys.update().values(expires_at=ctx.now() - timedelta(seconds=1)))

    # Then the key starts a new job, and the sweep forgets expired answers
    later = post(api, auth, "daily")
    assert later.status_code == 202 and later.json["id"] != first.json["id"]
    with ctx.store.begin() as conn:
        conn.execute(idempotency_keys.update().values(expires_at=ctx.now() - timedelta(seconds=1)))
    assert forget_idempotency_keys(ctx) == 1
    with ctx.store.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(idempotency_keys)).scalar() == 0


def test_malformed_keys_are_422s_naming_the_header(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    for key in ("", "k" * 256, "tab\tinside"):
        result = post(api, auth, key)
        assert result.status_code == 422, key
        assert [e["field"] for e in result.json["errors"]] == ["Idempotency-Key"]
    assert post(api, auth, "k" * 255).status_code == 202
    assert job_count(ctx, account) == 1


def test_a_signup_retried_with_its_key_gets_its_api_key_again(ctx: Context) -> None:
    api = testing.TestClient(create_app(ctx))
    body = {"email": "builder@listings.example"}
    first = api.simulate_post("/v1/signup", json=body, headers={"Idempotency-Key": "s-1"})
    assert first.status_code == 201, first.text

    again = api.simulate_post("/v1/signup", json=body, headers={"Idempotency-Key": "s-1"})
    other = api.simulate_post(
        "/v1/signup", json={"email": "someone@else.example"}, headers={"Idempotency-Key": "s-1"}
    )
    without = api.simulate_post("/v1/signup", json=body)

    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    assert other.status_code == 422
    assert [e["field"] for e in other.json["errors"]] == ["Idempotency-Key"]
    assert without.status_code == 409
    with ctx.store.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar() == 1
        stored = conn.execute(sa.select(idempotency_keys)).one()
    # The answer holds an API key: it is not stored readable, nor is the client's key
    assert first.json["api_key"].encode() not in stored.response
    assert b"s-1" not in stored.key_hash.encode()
