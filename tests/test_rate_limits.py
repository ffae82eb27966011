"""Rate limits and quotas (issue 11, finding 4; the signup limits of finding 3): what one
account, or one client address, may ask of genhook, counted in the real Redis that every
API process shares, and the in-flight cap checked in the database's own transaction."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import dramatiq
import httpx
import pytest
import sqlalchemy as sa
from falcon import testing
from pydantic import ValidationError

from backend.accounts import NewAccount, create_account, set_max_jobs_in_flight
from backend.api.app import create_app, openapi_document
from backend.api.client_address import client_address
from backend.context import Context, build_context, use_context
from backend.ratelimit.quotas import RateLimits
from backend.settings import Settings
from backend.store.tables import accounts, jobs
from tests.conftest import make_settings, wait_until
from tests.support.api import (
    GENERATION,
    GENERATIONS,
    deliveries_of,
    read_delivery,
    submit,
    wait_for_status,
)
from tests.support.ledger import balance
from tests.support.receiver import WebhookReceiver
from tests.support.wsgi_server import serve_wsgi

GENHOOK_CLI = str(Path(sys.executable).parent / "genhook")
POLICY = re.compile(r'"(?P<name>[\w-]+)";q=(?P<q>\d+);w=(?P<w>\d+)')
STATE = re.compile(r'"(?P<name>[\w-]+)";r=(?P<r>\d+);t=(?P<t>\d+)')


def with_limits(ctx: Context, **values: object) -> Context:
    """The test's context with tighter limits, installed for the actors too."""
    settings = Settings.model_validate({**ctx.settings.model_dump(), **values})
    limited = dataclasses.replace(
        ctx, settings=settings, rate_limits=RateLimits(settings, ctx.redis)
    )
    use_context(limited)
    return limited


def api_with_limits(ctx: Context, **values: object) -> testing.TestClient:
    """An API (and actors) running with tighter limits than the suite's."""
    return testing.TestClient(create_app(with_limits(ctx, **values)))


def windows(header: str, pattern: re.Pattern[str]) -> dict[str, dict[str, int]]:
    return {
        m["name"]: {k: int(v) for k, v in m.groupdict().items() if k != "name"}
        for m in pattern.finditer(header)
    }


def problem(result: testing.Result | httpx.Response) -> dict:
    body = result.json if isinstance(result, testing.Result) else result.json()
    assert result.headers["Content-Type"] == "application/problem+json"
    return dict(body)


# -- per-account request rates --------------------------------------------------------------


def test_every_answer_carries_the_ratelimit_fields_and_a_burst_past_them_is_a_429(
    ctx: Context, auth: dict[str, str]
) -> None:
    # Given reads limited to a burst of 3 a second and 5 a minute
    limited = with_limits(ctx, rate_limit_reads="3/second;5/minute")
    api = testing.TestClient(create_app(limited))

    # When the client reads three times at once
    answers = [api.simulate_get("/v1/account", headers=auth) for _ in range(3)]

    # Then each success says the policy and what is left of each window
    assert [a.status_code for a in answers] == [200, 200, 200]
    policy = windows(answers[0].headers["RateLimit-Policy"], POLICY)
    assert policy == {"read-1s": {"q": 3, "w": 1}, "read-60s": {"q": 5, "w": 60}}
    left = [windows(a.headers["RateLimit"], STATE) for a in answers]
    assert [w["read-1s"]["r"] for w in left] == [2, 1, 0]
    assert [w["read-60s"]["r"] for w in left] == [4, 3, 2]

    # And the fourth in the same second is a 429 problem with Retry-After
    refused = api.simulate_get("/v1/account", headers=auth)
    assert refused.status_code == 429
    body = problem(refused)
    assert body["type"] == "urn:genhook:problem:rate-limited"
    assert "read-1s" in body["detail"]
    assert refused.headers["Retry-After"] == "1"
    assert windows(refused.headers["RateLimit"], STATE)["read-1s"]["r"] == 0


def test_the_sustained_window_refuses_once_the_bursts_add_up(
    ctx: Context, auth: dict[str, str]
) -> None:
    api = api_with_limits(ctx, rate_limit_reads="100/second;4/minute")
    assert [api.simulate_get("/v1/account", headers=auth).status_code for _ in range(4)] == [
        200
    ] * 4

    refused = api.simulate_get("/v1/account", headers=auth)

    assert refused.status_code == 429
    assert "read-60s" in problem(refused)["detail"]
    assert 1 < int(refused.headers["Retry-After"]) <= 60


def test_a_hit_refused_by_the_burst_window_is_not_counted_in_the_sustained_one(
    ctx: Context, auth: dict[str, str]
) -> None:
    api = api_with_limits(ctx, rate_limit_reads="2/second;5/minute")
    answers = [api.simulate_get("/v1/account", headers=auth) for _ in range(6)]
    # Two pass, the four after them are refused by the burst window
    assert [a.status_code for a in answers] == [200, 200, 429, 429, 429, 429]
    assert "read-1s" in problem(answers[2])["detail"]
    # And the minute's window counted the two that passed only
    minute = windows(answers[-1].headers["RateLimit"], STATE)["read-60s"]
    assert minute["r"] == 3


def test_writes_are_counted_apart_from_reads_and_a_refused_write_changes_nothing(
    ctx: Context, auth: dict[str, str], account: NewAccount
) -> None:
    # Given an account that has used up its writes, with reads still to spare
    limited = with_limits(ctx, rate_limit_writes="1/minute", rate_limit_reads="50/minute")
    api = testing.TestClient(create_app(limited))
    first = api.simulate_post(GENERATIONS, json=GENERATION, headers=auth)
    assert first.status_code == 202
    assert windows(first.headers["RateLimit-Policy"], POLICY) == {"write-60s": {"q": 1, "w": 60}}
    before = balance(ctx, account)

    # When it submits again
    refused = api.simulate_post(GENERATIONS, json=GENERATION, headers=auth)

    # Then the write is a 429 and nothing was inserted or charged, while reads still work
    assert refused.status_code == 429
    assert problem(refused)["type"] == "urn:genhook:problem:rate-limited"
    assert balance(ctx, account) == before
    assert job_count(ctx, account) == 1
    read = api.simulate_get(f"{GENERATIONS}/{first.json['id']}", headers=auth)
    assert read.status_code == 200
    assert windows(read.headers["RateLimit"], STATE)["read-60s"]["r"] == 49


def test_each_account_has_its_own_count(ctx: Context, auth: dict[str, str]) -> None:
    api = api_with_limits(ctx, rate_limit_reads="1/minute")
    other = create_account(ctx, "neighbour@example.com")
    assert api.simulate_get("/v1/account", headers=auth).status_code == 200
    assert api.simulate_get("/v1/account", headers=auth).status_code == 429

    theirs = api.simulate_get("/v1/account", headers={"Authorization": f"Bearer {other.api_key}"})

    assert theirs.status_code == 200


def test_two_api_processes_share_one_count_in_redis(
    settings: Settings, ctx: Context, auth: dict[str, str]
) -> None:
    # Given two API processes (each its own context and Redis connections) on real ports
    tight = make_settings(
        settings.database_url,
        settings.redis_url,
        settings.simulator_url,
        rate_limit_reads="4/minute",
    )
    first = build_context(tight, broker=dramatiq.get_broker())
    second = build_context(tight, broker=dramatiq.get_broker())
    try:
        with (
            serve_wsgi(create_app(first)) as one,
            serve_wsgi(create_app(second)) as two,
            httpx.Client(timeout=10) as client,
        ):
            # When the client spreads six reads over both
            statuses = [
                client.get(f"{url}/v1/account", headers=auth).status_code
                for url in (one, two, one, two, one, two)
            ]
            refused = client.get(f"{two}/v1/account", headers=auth)
    finally:
        first.close()
        second.close()

    # Then only four pass in all, whichever process answered
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


def test_public_routes_are_not_counted_against_an_account(
    ctx: Context, auth: dict[str, str]
) -> None:
    api = api_with_limits(ctx, rate_limit_reads="1/minute")

    # When the client reads the public catalog, with its key, three times
    public = [api.simulate_get("/v1/models", headers=auth) for _ in range(3)]

    # Then those were not counted: its one read a minute is still there
    assert [a.status_code for a in public] == [200, 200, 200]
    assert "RateLimit" not in public[0].headers
    own = api.simulate_get("/v1/account", headers=auth)
    assert own.status_code == 200
    assert windows(own.headers["RateLimit"], STATE) == {"read-60s": {"r": 0, "t": 60}}


def test_without_redis_requests_pass_without_headers_and_a_warning_is_logged(
    settings: Settings, ctx: Context, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given an API whose Redis is unreachable (nothing listens on that port)
    dead = make_settings(
        settings.database_url,
        f"redis://127.0.0.1:{closed_port()}/0",
        settings.simulator_url,
        rate_limit_reads="1/minute",
    )
    blind = build_context(dead, broker=dramatiq.get_broker())
    try:
        api = testing.TestClient(create_app(blind))
        with caplog.at_level(logging.WARNING, logger="backend.ratelimit.limiter"):
            # When the account reads more than its limit
            answers = [api.simulate_get("/v1/account", headers=auth) for _ in range(3)]
    finally:
        blind.close()

    # Then genhook fails open: every read answered, no RateLimit fields, one warning
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all("RateLimit" not in a.headers for a in answers)
    warnings = [r for r in caplog.records if "failing open" in r.getMessage()]
    assert len(warnings) == 1


# -- jobs in flight ------------------------------------------------------------------------


def job_count(ctx: Context, account: NewAccount) -> int:
    with ctx.store.begin() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(jobs.c.account_id == account.account.id)
            ).scalar_one()
        )


def test_concurrent_submissions_never_exceed_the_accounts_cap(
    ctx: Context, auth: dict[str, str], account: NewAccount
) -> None:
    # Given an account the operator capped at 3 jobs in flight, and the API on a real server
    set_max_jobs_in_flight(ctx, account.account.email, 3)
    before = balance(ctx, account)
    start = threading.Barrier(12)

    with serve_wsgi(create_app(ctx)) as url, httpx.Client(base_url=url, timeout=30) as client:

        def send(_: int) -> httpx.Response:
            start.wait()
            return client.post(GENERATIONS, json=GENERATION, headers=auth)

        # When twelve submissions race
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(send, range(12)))

    # Then exactly three were accepted and charged; the others are 429s naming the cap
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] * 3 + [429] * 9
    refused = [problem(a) for a in answers if a.status_code == 429]
    assert {p["type"] for p in refused} == {"urn:genhook:problem:too-many-jobs-in-flight"}
    assert all("at most 3 generations in flight" in p["detail"] for p in refused)
    assert all(int(a.headers["Retry-After"]) > 0 for a in answers if a.status_code == 429)
    assert job_count(ctx, account) == 3
    charged = sum(a.json()["credits"] for a in answers if a.status_code == 202)
    assert balance(ctx, account) == before - charged


def test_the_settings_cap_applies_and_a_finished_job_frees_its_slot(
    ctx: Context, auth: dict[str, str], account: NewAccount
) -> None:
    # Given the server's default cap of 2 and two jobs in flight
    api = api_with_limits(ctx, max_jobs_in_flight=2)
    first = submit(api, auth)
    submit(api, auth)
    before = balance(ctx, account)

    # When a third is submitted, it is refused, charging nothing
    refused = api.simulate_post(GENERATIONS, json=GENERATION, headers=auth)
    assert refused.status_code == 429
    assert "at most 2 generations in flight" in problem(refused)["detail"]
    assert balance(ctx, account) == before

    # And once one is canceled (finished), the next one is accepted
    assert api.simulate_post(f"{GENERATIONS}/{first['id']}/cancel", headers=auth).status_code == 200
    assert api.simulate_post(GENERATIONS, json=GENERATION, headers=auth).status_code == 202


def test_the_operator_sets_and_resets_an_accounts_cap_from_the_command_line(
    ctx: Context, auth: dict[str, str], account: NewAccount, database_url: str
) -> None:
    api = testing.TestClient(create_app(with_limits(ctx, max_jobs_in_flight=5)))

    # When the operator caps the account at 1
    done = genhook_set_limits(
        database_url, "--email", "Builder@Example.com", "--max-jobs-in-flight", "1"
    )
    assert done.returncode == 0, done.stderr
    assert "max jobs in flight  1" in done.stdout

    # Then its second job in flight is refused
    submit(api, auth)
    assert api.simulate_post(GENERATIONS, json=GENERATION, headers=auth).status_code == 429

    # And `default` gives it the server's cap again
    reset = genhook_set_limits(
        database_url, "--email", "builder@example.com", "--max-jobs-in-flight", "default"
    )
    assert reset.returncode == 0, reset.stderr
    with ctx.store.begin() as conn:
        cap = conn.execute(
            sa.select(accounts.c.max_jobs_in_flight).where(accounts.c.id == account.account.id)
        ).scalar_one()
    assert cap is None
    assert api.simulate_post(GENERATIONS, json=GENERATION, headers=auth).status_code == 202

    # And an unknown email or a bad number is refused
    unknown = genhook_set_limits(
        database_url, "--email", "nobody@example.com", "--max-jobs-in-flight", "2"
    )
    assert unknown.returncode == 1 and "no account" in unknown.stderr
    bad = genhook_set_limits(
        database_url, "--email", "builder@example.com", "--max-jobs-in-flight", "-1"
    )
    assert bad.returncode == 2 and "at least 0" in bad.stderr


def genhook_set_limits(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")}
    env["GENHOOK_DATABASE_URL"] = database_url
    return subprocess.run(
        [GENHOOK_CLI, "accounts", "set-limits", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- outbound deliveries, redeliver and recover -----------------------------------------------


@pytest.fixture
def hooks(receiver: tuple[WebhookReceiver, str]) -> Iterator[tuple[WebhookReceiver, str]]:
    app, url = receiver
    yield app, f"{url}/hooks"


def test_webhooks_past_the_accounts_quota_wait_and_redeliver_and_recover_are_429s(
    ctx: Context,
    worker: dramatiq.Worker,
    auth: dict[str, str],
    hooks: tuple[WebhookReceiver, str],
) -> None:
    # Given an account allowed 2 webhook attempts an hour, and three jobs that complete
    receiver, url = hooks
    limited = with_limits(ctx, quota_deliveries="2/hour")
    api = testing.TestClient(create_app(limited))
    job_ids = [submit(api, auth, webhook_url=url)["id"] for _ in range(3)]
    for job_id in job_ids:
        wait_for_status(api, auth, job_id, "completed")

    # Then two webhooks are sent and the third waits, unsent and uncounted, about an hour
    receiver.wait_for(2)

    def waiting() -> dict | None:
        for job_id in job_ids:
            for delivery in deliveries_of(api, auth, job_id):
                due = delivery["next_attempt_at"]
                if due and _parse(due) > limited.now() + timedelta(minutes=30):
                    return delivery
        return None

    held = wait_until(waiting)
    assert held["attempt_count"] == 0
    due_in = _parse(held["next_attempt_at"]) - limited.now()
    assert timedelta(minutes=50) < due_in <= timedelta(hours=1, minutes=1)

    # And asking for more is refused while the quota is used up
    redeliver = api.simulate_post(f"/v1/deliveries/{held['id']}/redeliver", headers=auth)
    recover = api.simulate_post(
        "/v1/deliveries/recover",
        json={"since": "2026-01-01T00:00:00Z", "status": "pending"},
        headers=auth,
    )
    for refused in (redeliver, recover):
        assert refused.status_code == 429
        body = problem(refused)
        assert body["type"] == "urn:genhook:problem:quota-exceeded"
        assert "webhook delivery quota" in body["detail"]
        assert int(refused.headers["Retry-After"]) > 60
    assert len(receiver.requests) == 2


def test_redeliver_calls_have_their_own_quota(
    ctx: Context,
    worker: dramatiq.Worker,
    auth: dict[str, str],
    hooks: tuple[WebhookReceiver, str],
) -> None:
    receiver, url = hooks
    api = api_with_limits(ctx, quota_redeliveries="2/hour")
    job = submit(api, auth, webhook_url=url)
    wait_for_status(api, auth, job["id"], "completed")
    receiver.wait_for(1)
    delivery_id = deliveries_of(api, auth, job["id"])[0]["id"]
    path = f"/v1/deliveries/{delivery_id}/redeliver"
    # (recorded as delivered first: a redeliver while an attempt is in flight only brings
    # that attempt forward)
    wait_until(lambda: read_delivery(api, auth, delivery_id)["status"] == "delivered")

    # When the client redelivers it three times, each after the last one arrived
    answers = []
    for attempts in (2, 3, 3):
        answers.append(api.simulate_post(path, headers=auth))
        wait_until(
            lambda n=attempts: (
                (d := read_delivery(api, auth, delivery_id))["attempt_count"] == n
                and d["status"] == "delivered"
            )
        )

    # Then the third is refused: two redeliver calls an hour
    assert [a.status_code for a in answers] == [202, 202, 429]
    body = problem(answers[2])
    assert body["type"] == "urn:genhook:problem:quota-exceeded"
    assert "redeliver calls" in body["detail"]
    # And the 429 names the redeliver window beside the request rate's own
    state = windows(answers[2].headers["RateLimit"], STATE)
    assert state["redeliver-3600s"] == {"r": 0, "t": int(answers[2].headers["Retry-After"])}
    assert set(state) == {"write-1s", "redeliver-3600s"}
    assert len(receiver.requests) == 3


def test_recover_calls_have_their_own_quota(ctx: Context, auth: dict[str, str]) -> None:
    api = api_with_limits(ctx, quota_recovers="1/hour")
    since = {"since": "2026-01-01T00:00:00Z"}
    endpoint = api.simulate_post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hooks"}, headers=auth
    ).json

    first = api.simulate_post("/v1/deliveries/recover", json=since, headers=auth)
    by_endpoint = api.simulate_post(
        f"/v1/webhook-endpoints/{endpoint['id']}/recover", json=since, headers=auth
    )

    assert first.status_code == 202
    assert by_endpoint.status_code == 429
    assert "recover calls" in problem(by_endpoint)["detail"]


# -- signups -------------------------------------------------------------------------------


def sign_up(api: testing.TestClient, email: str, **request: object) -> testing.Result:
    return api.simulate_post("/v1/signup", json={"email": email}, **request)  # type: ignore[arg-type]


def test_signups_are_limited_per_client_address(ctx: Context) -> None:
    limited = with_limits(ctx, signup_limit_per_address="2/hour")
    api = testing.TestClient(create_app(limited))
    here = {"remote_addr": "198.51.100.7"}

    answers = [sign_up(api, f"user{n}@example.com", **here) for n in range(3)]
    # A forged X-Forwarded-For changes nothing when no proxy is trusted
    forged = sign_up(api, "user9@example.com", headers={"X-Forwarded-For": "203.0.113.1"}, **here)
    elsewhere = sign_up(api, "user3@example.com", remote_addr="198.51.100.8")

    assert [a.status_code for a in answers] == [201, 201, 429]
    assert problem(answers[2])["type"] == "urn:genhook:problem:rate-limited"
    assert "this address" in problem(answers[2])["detail"]
    assert int(answers[2].headers["Retry-After"]) > 60
    assert forged.status_code == 429
    assert elsewhere.status_code == 201
    with ctx.store.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one() == 3


def test_signups_are_limited_per_email_domain(ctx: Context) -> None:
    api = api_with_limits(ctx, signup_limit_per_domain="2/hour")

    answers = [
        sign_up(api, f"user{n}@Example.org", remote_addr=f"198.51.100.{n}") for n in range(3)
    ]
    other_domain = sign_up(api, "user@example.net", remote_addr="198.51.100.9")

    assert [a.status_code for a in answers] == [201, 201, 429]
    assert "example.org" in problem(answers[2])["detail"]
    assert other_domain.status_code == 201


def test_behind_a_trusted_proxy_the_client_is_the_rightmost_untrusted_forwarded_address(
    ctx: Context,
) -> None:
    # Given the API behind a proxy at 10.0.0.2 that the operator trusts
    api = api_with_limits(ctx, signup_limit_per_address="1/hour", trusted_proxies="10.0.0.0/24")
    proxy = {"remote_addr": "10.0.0.2"}

    def via_proxy(email: str, forwarded: str) -> testing.Result:
        return sign_up(api, email, headers={"X-Forwarded-For": forwarded}, **proxy)

    # When two clients sign up through it, and the first tries again with a forged hop
    first = via_proxy("a@example.com", "203.0.113.5")
    second = via_proxy("b@example.com", "203.0.113.6")
    forged = via_proxy("c@example.com", "192.0.2.77, 203.0.113.5")

    # Then each client was counted apart, and the forged left-most hop did not help
    assert (first.status_code, second.status_code, forged.status_code) == (201, 201, 429)


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("198.51.100.7", "203.0.113.5", "198.51.100.7"),  # untrusted peer: header ignored
        ("10.0.0.2", "", "10.0.0.2"),  # trusted peer, no header
        ("10.0.0.2", "192.0.2.1, 203.0.113.5", "203.0.113.5"),  # right-most untrusted
        ("10.0.0.2", "203.0.113.5, 10.0.0.9", "203.0.113.5"),  # skips a trusted hop
        ("10.0.0.2", "10.0.0.7, 10.0.0.9", "10.0.0.7"),  # all trusted: the left-most
        ("10.0.0.2", "203.0.113.5, not-an-ip", "10.0.0.2"),  # garbage: the proxy itself
    ],
)
def test_client_address(peer: str, forwarded: str, client: str) -> None:
    settings = Settings(trusted_proxies="10.0.0.0/24")  # type: ignore[arg-type]
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    req = testing.create_req(remote_addr=peer, headers=headers)
    assert client_address(req, settings.trusted_proxies) == client


@pytest.mark.parametrize("value", ["lots", "10/fortnight", "0/second", "5/second;x"])
def test_a_limit_that_cannot_be_read_stops_the_settings_naming_it(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(rate_limit_writes=value)
    assert refused.value.errors()[0]["loc"] == ("rate_limit_writes",)


# -- the contract --------------------------------------------------------------------------


def test_the_openapi_document_declares_the_429s_and_the_ratelimit_fields(ctx: Context) -> None:
    document = openapi_document(ctx)
    operations = {
        (path, method): op
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    }
    for (path, method), op in operations.items():
        public = op.get("security") == []
        if public and op["operationId"] != "signUp":
            continue
        # Every authenticated operation (and signup) may answer 429 with Retry-After
        refused = op["responses"].get("429")
        assert refused is not None, (path, method)
        assert "Retry-After" in refused["headers"], (path, method)
        if public:
            continue
        # And every success of an authenticated one carries the RateLimit fields
        successes = [r for code, r in op["responses"].items() if code.startswith("2")]
        for success in successes:
            assert {"RateLimit-Policy", "RateLimit"} <= set(success["headers"]), (path, method)


# -- helpers -------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
