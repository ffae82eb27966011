"""Poison inputs: a value one tenant sends must never break the work of others. URLs are
checked in bytes and by the parser that sends them, the deliveries' uniqueness holds a hash
of the URL (any length fits an index), and one bad row never stops a sweep."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from falcon import testing

from backend import ids
from backend.accounts import NewAccount
from backend.context import Context
from backend.jobs import finish, sweep
from backend.jobs.create import create_generation
from backend.jobs.deliver import deliver
from backend.jobs.states import JobStatus
from backend.schemas.generations import GenerationCreate
from backend.store import deliveries as deliveries_store
from backend.store import jobs as jobs_store
from tests.support.api import GENERATION, GENERATIONS

#: Each refused for what it is (the message says which), not because its host does not
#: resolve: the others point at loopback, which the tests' settings allow.
BAD_URLS = {
    "2,000 non-ASCII characters (4,000+ bytes)": ("http://127.0.0.1:9/" + "é" * 2000, "bytes"),
    "a line feed": ("http://127.0.0.1:9/hook\nX-Injected: 1", "control characters"),
    "a carriage return": ("http://127.0.0.1:9/\rhook", "control characters"),
    "a tab": ("http://127.0.0.1:9/\thook", "control characters"),
    "DEL": ("http://127.0.0.1:9/\x7fhook", "control characters"),
    "an IDNA2003-only host": ("https://\u2163.example.com/hook", "Invalid IDNA hostname"),
    "a space in the host": ("https://exa mple.com/hook", "without spaces"),
}


@pytest.mark.parametrize(("url", "why"), BAD_URLS.values(), ids=BAD_URLS.keys())
def test_a_webhook_url_that_could_not_be_sent_is_a_422_at_submission(
    api: testing.TestClient, auth: dict[str, str], url: str, why: str
) -> None:
    result = api.simulate_post(GENERATIONS, json={**GENERATION, "webhook_url": url}, headers=auth)

    assert result.status_code == 422, result.text
    assert [e["field"] for e in result.json["errors"]] == ["webhook_url"]
    assert why in result.json["errors"][0]["message"]


@pytest.mark.parametrize(("url", "why"), BAD_URLS.values(), ids=BAD_URLS.keys())
def test_an_endpoint_url_that_could_not_be_sent_is_a_422(
    api: testing.TestClient, auth: dict[str, str], url: str, why: str
) -> None:
    result = api.simulate_post("/v1/webhook-endpoints", json={"url": url}, headers=auth)

    assert result.status_code == 422, result.text
    assert [e["field"] for e in result.json["errors"]] == ["url"]
    assert why in result.json["errors"][0]["message"]


def test_the_longest_url_allowed_is_accepted(api: testing.TestClient, auth: dict[str, str]) -> None:
    url = "http://127.0.0.1:9/" + "a" * (2048 - len("http://127.0.0.1:9/"))
    body = {**GENERATION, "webhook_url": url}
    assert api.simulate_post(GENERATIONS, json=body, headers=auth).status_code == 202
    too_long = {**GENERATION, "webhook_url": url + "a"}
    assert api.simulate_post(GENERATIONS, json=too_long, headers=auth).status_code == 422


def test_a_delivery_to_a_very_long_url_is_stored_and_still_unique(
    ctx: Context, account: NewAccount
) -> None:
    # Given a job, and a URL far longer than an index row may be (PostgreSQL: ~2.7 KB)
    job = create_generation(ctx, account.account.id, GenerationCreate(model="kling-v3", prompt="p"))
    url = "https://example.com/" + "ü" * 6000

    def insert() -> object:
        with ctx.store.begin() as conn:
            return deliveries_store.create_delivery(
                conn,
                delivery_id=ids.delivery_id(),
                job_id=job.id,
                account_id=account.account.id,
                endpoint_id=None,
                event="video.generation.failed",
                job_state="failed",
                url=url,
                payload="{}",
                next_attempt_at=ctx.now(),
            )

    # Then it is stored once, and a second one for the same destination is refused
    first = insert()
    assert first is not None
    assert insert() is None


def test_a_stored_url_the_sender_cannot_parse_fails_its_delivery_at_once(
    ctx: Context, account: NewAccount
) -> None:
    # Given a delivery written before URLs were checked by the sending parser
    job = create_generation(ctx, account.account.id, GenerationCreate(model="kling-v3", prompt="p"))
    with ctx.store.begin() as conn:
        delivery = deliveries_store.create_delivery(
            conn,
            delivery_id=ids.delivery_id(),
            job_id=job.id,
            account_id=account.account.id,
            endpoint_id=None,
            event="video.generation.failed",
            job_state="failed",
            url="https://\u2163.example.com/hook",
            payload="{}",
            next_attempt_at=ctx.now(),
        )
    assert delivery is not None

    # When it is attempted
    deliver(ctx, delivery.id)

    # Then it fails at once, logged with why, rather than raising on every attempt
    with ctx.store.begin() as conn:
        stored = deliveries_store.get_delivery(conn, delivery.id)
        attempts = deliveries_store.attempts_for(conn, [delivery.id])[delivery.id]
    assert stored is not None and stored.status == "failed"
    assert len(attempts) == 1 and "not a valid URL" in (attempts[0].error or "")


def test_one_job_that_cannot_be_failed_never_stops_the_sweeps(
    ctx: Context, account: NewAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two jobs past their maximum wait, one of which raises when it is failed (a
    # poison row), and a third whose submit message was lost
    def new_job() -> str:
        return create_generation(
            ctx, account.account.id, GenerationCreate(model="kling-v3", prompt="p")
        ).id

    poison, overdue, lost = new_job(), new_job(), new_job()
    with ctx.store.begin() as conn:
        for job_id in (poison, overdue):
            jobs_store.update_job(conn, job_id, deadline_at=ctx.now() - timedelta(seconds=1))
        jobs_store.update_job(conn, lost, updated_at=ctx.now() - timedelta(hours=1))

    real_fail = finish.fail

    def fail(c: Context, job_id: str, **kwargs: object) -> object:
        if job_id == poison:
            raise RuntimeError("a row no statement can write")
        return real_fail(c, job_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(finish, "fail", fail)

    # When the sweeps run
    report = sweep.run_sweeps(ctx)

    # Then the poison job is logged, counted and skipped, and everything else was done
    assert report.errors == 1
    assert report.expired == 1
    assert report.resubmitted >= 1
    with ctx.store.begin() as conn:
        statuses = {j: jobs_store.get_job(conn, j).status for j in (poison, overdue)}  # type: ignore[union-attr]
    assert statuses == {poison: JobStatus.PENDING, overdue: JobStatus.FAILED}


def test_a_sweep_that_raises_does_not_stop_the_others(
    ctx: Context, account: NewAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost = create_generation(
        ctx, account.account.id, GenerationCreate(model="kling-v3", prompt="p")
    )
    with ctx.store.begin() as conn:
        jobs_store.update_job(conn, lost.id, updated_at=ctx.now() - timedelta(hours=1))

    def broken(*_: object, **__: object) -> list[str]:
        raise RuntimeError("the overdue query failed")

    monkeypatch.setattr(jobs_store, "overdue_jobs", broken)

    report = sweep.run_sweeps(ctx)

    assert report.errors == 1
    assert report.resubmitted == 1


EXTREME_DATES = [
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
]


@pytest.mark.parametrize("since", EXTREME_DATES)
def test_extreme_dates_in_recover_are_never_a_500(
    api: testing.TestClient, auth: dict[str, str], since: str
) -> None:
    account = api.simulate_post(
        "/v1/deliveries/recover", json={"since": since, "status": "failed"}, headers=auth
    )
    endpoint = api.simulate_post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/h"}, headers=auth
    )
    assert endpoint.status_code == 201, endpoint.text
    one = api.simulate_post(
        f"/v1/webhook-endpoints/{endpoint.json['id']}/recover", json={"since": since}, headers=auth
    )
    for result in (account, one):
        assert result.status_code in (202, 422), result.text
        if result.status_code == 422:
            assert [e["field"] for e in result.json["errors"]] == ["since"]


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


CRAFTED_CURSORS = [
    _cursor(["9999-12-31T23:59:59+00:00", "vgen_x"]),
    _cursor(["0001-01-01T00:00:00-14:00", "vgen_x"]),
    _cursor([1, 2]),
    _cursor({"a": 1}),
    _cursor(["x"]),
    _cursor(None),
    _cursor(["2026-11-29T00:00:00", "vgen_x"]),
    _cursor(["2026-11-29T00:00:00+00:00", 5]),
    _cursor(["2026-11-29T00:00:00+00:00", "\u0000"]),
    _cursor(["2026-11-29T00:00:00+00:00", "x" * 5000]),
    _cursor(["not a date", "vgen_x"]),
    "!!!",
    "",
]


@pytest.mark.parametrize("path", ["/v1/video/generations", "/v1/account/ledger"])
@pytest.mark.parametrize("cursor", CRAFTED_CURSORS)
def test_crafted_cursors_are_a_422_naming_the_cursor_never_a_500(
    api: testing.TestClient, auth: dict[str, str], path: str, cursor: str
) -> None:
    result = api.simulate_get(path, params={"cursor": cursor}, headers=auth)

    assert result.status_code in (200, 422), result.text
    if result.status_code == 422:
        assert [e["field"] for e in result.json["errors"]] == ["cursor"]
