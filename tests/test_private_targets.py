"""Private webhook targets are allowed per account, and the simulator's back door is locked.

The outside review (issue 11, finding 6): under `genhook up`, loopback was allowed to every
account, so a free account pointed its webhook at the provider simulator's `/_sim/reset`,
reset the farm (failing another tenant's job) and read 2 KB of the answer in its delivery
log. These tests run with the very settings `genhook up` gives its processes
(``backend.up.stack_environment``), the simulator on 127.0.0.1 and real receivers there.
DNS answers that cannot be produced on this machine come from the scripted DNS stand-in of
``tests/test_ssrf.py``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import httpx
import pytest
from falcon import testing

from backend import up
from backend.accounts import NewAccount, get_account, set_private_webhooks
from backend.context import Context
from backend.jobs.deliver import deliver
from backend.settings import Settings
from backend.simulator.app import create_app as create_simulator
from backend.simulator.credentials import PREFIXES
from backend.store import deliveries as deliveries_store
from tests.conftest import TEST_SECRET_KEY
from tests.support.faults import CONTROL_HEADERS, CONTROL_TOKEN
from tests.support.receiver import Reply, WebhookReceiver
from tests.support.wsgi_server import serve_wsgi
from tests.test_ssrf import PUBLIC_ADDRESS, ScriptedDNS, attempts_of, ended_with_delivery, new_job

GENERATIONS = "/v1/video/generations"
ENDPOINTS = "/v1/webhook-endpoints"
JOB = {"model": "kling-v3", "prompt": "Product reveal on white"}


@pytest.fixture
def settings(
    database_url: str,
    redis_url: str,
    simulator: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """What `genhook up`'s API and worker run with: the environment it gives them, on this
    test's database, Redis and simulator."""
    base = Settings.model_validate({"var_dir": tmp_path, "simulator_url": simulator})
    env = {
        **up.stack_environment(
            base, redis_url=redis_url, base_url="http://127.0.0.1:9", secret_key=TEST_SECRET_KEY
        ),
        **up.provider_environment(base, list(PREFIXES), "http://127.0.0.1:9"),
    }
    env.pop("GENHOOK_PUBLIC_BASE_URL", None)  # nothing listens there in this test
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        simulator_url=simulator,
        simulator_fallback=True,
        webhook_timeout_seconds=2.0,
        webhook_retry_schedule=[0.0, 0.1],
        recovery_on_worker_start=False,
    )


@pytest.fixture
def demo(ctx: Context, tmp_path: Path) -> NewAccount:
    """`genhook up`'s demo account, made by `genhook up`'s own code."""
    made = up.ensure_demo_account(ctx, tmp_path / "demo-account.json")
    found = get_account(ctx, made.account_id)
    assert found is not None
    return NewAccount(account=found, api_key=made.api_key, signing_secret=made.signing_secret)


def bearer(account: NewAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}


@pytest.fixture
def a_render(simulator: str) -> str:
    """Another tenant's render, in progress at the simulator; returns its id."""
    answer = httpx.post(
        f"{simulator}/v1/renders",
        json={"model": "veo-sim", "prompt": "p", "duration_seconds": 5, "aspect_ratio": "16:9"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def renders_at(simulator: str) -> list[str]:
    answer = httpx.get(f"{simulator}/_sim/renders", headers=CONTROL_HEADERS)
    assert answer.status_code == 200, answer.text
    return [render["id"] for render in answer.json()]


def assert_422_naming(result: testing.Result, field: str) -> None:
    assert result.status_code == 422, result.text
    assert field in [error["field"] for error in result.json["errors"]], result.json


# --- The attack, as the review made it ---------------------------------------------------


def test_up_opens_no_private_network_to_every_account(settings: Settings) -> None:
    # Given the settings genhook up gives its processes
    # Then no network is allowed to every account; private ones are for allowed accounts
    assert settings.webhook_allowed_networks == []
    assert {str(n) for n in settings.private_webhook_networks} >= {"127.0.0.0/8", "::1/128"}
    # And the simulator's own downloads may still reach it on loopback
    assert "127.0.0.0/8" in {str(n) for n in settings.provider_allowed_networks}


def test_a_free_account_pointing_its_webhook_at_the_simulator_reset_is_a_422(
    api: testing.TestClient,
    account: NewAccount,
    simulator: str,
    a_render: str,
) -> None:
    # Given a free account on a stack started by genhook up, and another tenant's render
    attack = f"{simulator}/_sim/reset"

    # When it submits a job whose webhook is the simulator's reset route
    job = api.simulate_post(
        GENERATIONS, json={**JOB, "webhook_url": attack}, headers=bearer(account)
    )
    # ...or registers an endpoint there
    endpoint = api.simulate_post(ENDPOINTS, json={"url": attack}, headers=bearer(account))

    # Then both are 422s naming the URL field
    assert_422_naming(job, "webhook_url")
    assert_422_naming(endpoint, "url")
    assert "genhook accounts set --allow-private-webhooks" in job.json["detail"]
    # And the simulator still holds the other tenant's render
    assert renders_at(simulator) == [a_render]


def test_a_free_account_never_reaches_the_simulator_at_delivery_even_by_dns_rebinding(
    ctx: Context,
    account: NewAccount,
    simulator: str,
    a_render: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a free account's job whose webhook host answered a public address when it was
    # submitted, and answers 127.0.0.1 (where the simulator listens) ever after
    port = simulator.rsplit(":", 1)[1]
    dns = ScriptedDNS([PUBLIC_ADDRESS], ["127.0.0.1"])
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
        if host == "rebind.example":
            return dns.getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    job_id = new_job(ctx, account, f"http://rebind.example:{port}/_sim/reset")
    delivery_id = ended_with_delivery(ctx, job_id)

    # When the webhook is delivered
    deliver(ctx, delivery_id)

    # Then the delivery is refused at connect time and failed at once
    (attempt,) = attempts_of(ctx, delivery_id)
    assert attempt.error is not None and attempt.error.startswith("refused:")
    assert "127.0.0.1" in attempt.error and attempt.response_status is None
    with ctx.store.begin() as conn:
        delivery = deliveries_store.get_delivery(conn, delivery_id)
    assert delivery is not None and delivery.status == deliveries_store.FAILED
    # And the simulator never heard of it: the other tenant's render is still there
    assert dns.queries == ["rebind.example", "rebind.example"]
    assert renders_at(simulator) == [a_render]


def test_an_allowance_taken_away_stops_the_next_delivery(
    ctx: Context, account: NewAccount, receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given an account allowed private targets that submitted a job to its loopback receiver
    app, url = receiver
    set_private_webhooks(ctx, account.account.email, True)
    delivery_id = ended_with_delivery(ctx, new_job(ctx, account, f"{url}/hook"))

    # When the operator takes the allowance away before the delivery is made
    set_private_webhooks(ctx, account.account.email, False)
    deliver(ctx, delivery_id)

    # Then the delivery is refused and the receiver got nothing
    (attempt,) = attempts_of(ctx, delivery_id)
    assert attempt.error is not None and attempt.error.startswith("refused:")
    assert app.requests == []


# --- Accounts allowed private targets -----------------------------------------------------


def test_the_demo_account_of_up_reaches_its_loopback_receiver_and_reads_its_answer(
    api: testing.TestClient, ctx: Context, demo: NewAccount, receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given genhook up's demo account and a receiver on this machine answering at length
    app, url = receiver
    app.reply(Reply("500 Internal Server Error", body=b"y" * 10_000))

    # When it submits a job to that receiver, and the webhook is delivered
    result = api.simulate_post(
        GENERATIONS, json={**JOB, "webhook_url": f"{url}/hook"}, headers=bearer(demo)
    )
    assert result.status_code == 202, result.text
    delivery_id = ended_with_delivery(ctx, result.json["id"])
    deliver(ctx, delivery_id)

    # Then the receiver got it, and the log shows the first 256 bytes of its answer
    assert len(app.requests) == 1
    (attempt,) = attempts_of(ctx, delivery_id)
    assert attempt.response_status == 500
    assert attempt.response_body == "y" * 256


def test_an_allowed_account_still_cannot_drive_the_simulator_without_its_token(
    ctx: Context, demo: NewAccount, simulator: str, a_render: str
) -> None:
    # Given the demo account (allowed loopback) with a job whose webhook is the reset route
    delivery_id = ended_with_delivery(ctx, new_job(ctx, demo, f"{simulator}/_sim/reset"))

    # When the webhook is delivered
    deliver(ctx, delivery_id)

    # Then the simulator refused it (no control token) and reset nothing
    (attempt,) = attempts_of(ctx, delivery_id)
    assert attempt.response_status == 401
    assert renders_at(simulator) == [a_render]


def test_endpoints_follow_the_account_allowance(
    api: testing.TestClient,
    account: NewAccount,
    demo: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    _, url = receiver
    # When the demo account registers an endpoint on loopback, it is created
    created = api.simulate_post(ENDPOINTS, json={"url": f"{url}/a"}, headers=bearer(demo))
    assert created.status_code == 201, created.text
    # And a free account's public endpoint cannot be moved to loopback
    public = api.simulate_post(
        ENDPOINTS, json={"url": f"http://{PUBLIC_ADDRESS}/hook"}, headers=bearer(account)
    )
    assert public.status_code == 201, public.text
    moved = api.simulate_patch(
        f"{ENDPOINTS}/{public.json['id']}", json={"url": f"{url}/b"}, headers=bearer(account)
    )
    assert_422_naming(moved, "url")


def test_a_free_account_cannot_make_genhook_fetch_an_image_from_loopback(
    api: testing.TestClient, account: NewAccount, receiver: tuple[WebhookReceiver, str]
) -> None:
    app, url = receiver
    # When a free account asks for an image on this machine
    result = api.simulate_post(
        GENERATIONS, json={**JOB, "image_url": f"{url}/frame.png"}, headers=bearer(account)
    )
    # Then it is a 422 naming image_url, and nothing was fetched
    assert_422_naming(result, "image_url")
    assert app.requests == []


def test_link_local_addresses_stay_refused_even_to_allowed_accounts(
    api: testing.TestClient, demo: NewAccount
) -> None:
    # The cloud metadata address is not in the default private networks
    body = {**JOB, "webhook_url": "http://169.254.169.254/latest/meta-data/"}
    result = api.simulate_post(GENERATIONS, json=body, headers=bearer(demo))
    assert_422_naming(result, "webhook_url")


# --- What the delivery log shows of a private answer -------------------------------------


@pytest.fixture
def everyone_reaches_loopback(ctx: Context) -> Iterator[Context]:
    """An operator who opened loopback to every account (GENHOOK_WEBHOOK_ALLOWED_NETWORKS)."""
    from backend.context import build_context

    changed = ctx.settings.model_copy(
        update={"webhook_allowed_networks": ctx.settings.private_webhook_networks[:1]}
    )
    context = build_context(changed, broker=dramatiq.get_broker())
    yield context
    context.close()


def test_a_private_answer_is_never_shown_to_an_account_not_allowed_private_targets(
    everyone_reaches_loopback: Context,
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given an operator who opened loopback to every account, and an internal service there
    ctx = everyone_reaches_loopback
    app, url = receiver
    app.reply(Reply("200 OK", body=b'{"internal": "secret"}'))

    # When a free account's webhook is delivered to it
    delivery_id = ended_with_delivery(ctx, new_job(ctx, account, f"{url}/internal"))
    deliver(ctx, delivery_id)

    # Then it was sent (the operator allowed it) but the log keeps nothing of the answer
    assert len(app.requests) == 1
    (attempt,) = attempts_of(ctx, delivery_id)
    assert attempt.response_status == 200
    assert attempt.response_body is None


# --- The simulator's control routes -------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"Authorization": f"Basic {CONTROL_TOKEN}"}, id="wrong-scheme"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/_sim/reset"),
        ("POST", "/_sim/faults"),
        ("DELETE", "/_sim/faults"),
        ("GET", "/_sim/renders"),
        ("GET", "/_sim/callbacks"),
        ("GET", "/_sim/stats"),
    ],
)
def test_the_simulator_control_routes_need_the_operator_token(
    simulator: str, a_render: str, headers: dict[str, str], method: str, path: str
) -> None:
    # When a control route is called without the operator's token
    answer = httpx.request(
        method, f"{simulator}{path}", headers=headers, json={"on": "submit", "status": 500}
    )

    # Then it is a 401 and nothing changed: the render is there, no fault was injected
    assert answer.status_code == 401, answer.text
    assert renders_at(simulator) == [a_render]
    submitted = httpx.post(
        f"{simulator}/v1/renders",
        json={"model": "veo-sim", "prompt": "p", "duration_seconds": 5, "aspect_ratio": "16:9"},
    )
    assert submitted.status_code == 201, submitted.text


def test_without_a_configured_token_the_control_routes_are_off() -> None:
    with serve_wsgi(create_simulator(render_seconds=1)) as url:
        answer = httpx.post(f"{url}/_sim/reset", headers=CONTROL_HEADERS)
    assert answer.status_code == 403
    assert "GENHOOK_SIMULATOR_CONTROL_TOKEN" in answer.text


def test_up_gives_its_simulator_a_random_token_and_keeps_it_for_the_operator(
    tmp_path: Path,
) -> None:
    base = Settings.model_validate({"var_dir": tmp_path})
    first = up.stack_environment(
        base, redis_url="redis://x", base_url="http://127.0.0.1:1", secret_key=TEST_SECRET_KEY
    )
    second = up.stack_environment(
        base, redis_url="redis://x", base_url="http://127.0.0.1:1", secret_key=TEST_SECRET_KEY
    )
    token = first["GENHOOK_SIMULATOR_CONTROL_TOKEN"]
    assert len(token) >= 32 and token != second["GENHOOK_SIMULATOR_CONTROL_TOKEN"]
    assert "GENHOOK_WEBHOOK_ALLOWED_NETWORKS" not in first
    # And the file it is written to is the operator's alone
    up.write_stack_env(tmp_path / "stack.env", first)
    assert (tmp_path / "stack.env").stat().st_mode & 0o777 == 0o600
    assert f"GENHOOK_SIMULATOR_CONTROL_TOKEN={token}" in (tmp_path / "stack.env").read_text()


# --- Operators ---------------------------------------------------------------------------


def allowed_in(database: Path, email: str) -> bool:
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    sa.text("SELECT allow_private_webhooks FROM accounts WHERE email = :email"),
                    {"email": email},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_an_operator_allows_and_forbids_private_targets_from_the_command_line(
    tmp_path: Path,
) -> None:
    from tests.test_api_keys import genhook

    database = tmp_path / "var" / "genhook.db"
    assert genhook("migrate", cwd=tmp_path).returncode == 0
    # An account created with the flag is allowed; one created without it is not
    made = genhook(
        "accounts", "create", "--email", "lab@example.com", "--allow-private-webhooks", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    assert "private networks" in made.stdout
    assert (
        genhook("accounts", "create", "--email", "free@example.com", cwd=tmp_path).returncode == 0
    )
    assert allowed_in(database, "lab@example.com") is True
    assert allowed_in(database, "free@example.com") is False

    # And `accounts set` changes an existing account either way
    on = genhook(
        "accounts", "set", "--email", "free@example.com", "--allow-private-webhooks", cwd=tmp_path
    )
    off = genhook(
        "accounts", "set", "--email", "lab@example.com", "--no-allow-private-webhooks", cwd=tmp_path
    )
    assert on.returncode == 0 and off.returncode == 0, (on.stderr, off.stderr)
    assert allowed_in(database, "free@example.com") is True
    assert allowed_in(database, "lab@example.com") is False
    # An unknown email changes nothing and exits 1
    unknown = genhook(
        "accounts", "set", "--email", "nobody@example.com", "--allow-private-webhooks", cwd=tmp_path
    )
    assert unknown.returncode == 1 and "no account" in unknown.stderr
