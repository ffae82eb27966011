"""Account-level webhooks through the API: endpoints (subscriptions) and their secrets, the
fan-out of a job's events, secret rotation, the delivery log, redelivery and recovery.

Every webhook goes to a real receiver on 127.0.0.1 and is checked with the
``standardwebhooks`` reference library, as a user's receiver would check it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from falcon import testing
from openapi_spec_validator import validate
from standardwebhooks import Webhook

from backend.accounts import NewAccount, create_account, set_private_webhooks
from backend.api.app import create_app
from backend.context import Context
from backend.store.deliveries import MAX_LOGGED_BODY_CHARS
from backend.webhooks.endpoints import MAX_ENDPOINTS_PER_ACCOUNT
from tests.conftest import wait_until
from tests.support.api import GENERATIONS, deliveries_of, submit
from tests.support.receiver import Received, Reply, WebhookReceiver

ENDPOINTS = "/v1/webhook-endpoints"
COMPLETED = "video.generation.completed"
FAILED = "video.generation.failed"
CANCELED = "video.generation.canceled"
STATUS_CHANGED = "video.generation.status_changed"
PHASES = ["queued", "preparing", "rendering", "encoding", "finishing"]
#: A loopback URL the test settings allow, where nothing listens.
QUIET_URL = "http://127.0.0.1:9/hooks"

with_worker = pytest.mark.usefixtures("worker")


# --- Helpers -----------------------------------------------------------------------------


def create_endpoint(
    api: testing.TestClient, auth: dict[str, str], url: str, **fields: object
) -> dict[str, Any]:
    result = api.simulate_post(ENDPOINTS, json={"url": url, **fields}, headers=auth)
    assert result.status_code == 201, result.text
    return dict(result.json)


def endpoint_ids(api: testing.TestClient, auth: dict[str, str]) -> list[str]:
    result = api.simulate_get(ENDPOINTS, headers=auth)
    assert result.status_code == 200, result.text
    return [endpoint["id"] for endpoint in result.json["data"]]


def patch_endpoint(
    api: testing.TestClient, auth: dict[str, str], endpoint_id: str, **changes: object
) -> dict[str, Any]:
    result = api.simulate_patch(f"{ENDPOINTS}/{endpoint_id}", json=changes, headers=auth)
    assert result.status_code == 200, result.text
    return dict(result.json)


def settled_deliveries(api: testing.TestClient, auth: dict[str, str], job_id: str) -> list[dict]:
    """The job's deliveries once it has ended and none of them is still being tried.

    A job's terminal deliveries are written with its terminal state, and a delivery's
    outcome only after the receiver has answered, so every POST has arrived by then."""

    def ended() -> bool:
        job = api.simulate_get(f"{GENERATIONS}/{job_id}", headers=auth).json
        return job["status"] in ("completed", "failed")

    wait_until(ended)

    def all_settled() -> list[dict] | None:
        found = deliveries_of(api, auth, job_id)
        return found if found and all(d["status"] != "pending" for d in found) else None

    return wait_until(all_settled)  # type: ignore[no-any-return]


def delivery_status(api: testing.TestClient, auth: dict[str, str], delivery_id: str) -> str:
    result = api.simulate_get(f"/v1/deliveries/{delivery_id}", headers=auth)
    assert result.status_code == 200, result.text
    return str(result.json["status"])


def sent_to(app: WebhookReceiver, path: str) -> list[Received]:
    return [request for request in app.requests if request.path == path]


def genhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_by(secret: str, hook: Received) -> bool:
    """Does the Standard Webhooks reference library accept ``hook`` with ``secret``?"""
    try:
        Webhook(secret).verify(hook.body, hook.headers)
    except Exception:  # the library raises its own WebhookVerificationError
        return False
    return True


def assert_problem(result: testing.Result, status: int, field: str | None = None) -> dict:
    """An RFC 9457 problem with ``status``, one of whose errors names ``field`` (or a part
    of it, such as ``events.0``)."""
    assert result.status_code == status, result.text
    assert result.headers["content-type"] == "application/problem+json"
    problem = dict(result.json)
    assert problem["status"] == status
    if field is not None:
        named = [error["field"] for error in problem["errors"]]
        assert any(name == field or name.startswith(f"{field}.") for name in named), problem
    return problem


def bearer(account: NewAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- CRUD --------------------------------------------------------------------------------


def test_an_endpoint_is_created_with_a_secret_shown_once_and_reads_back(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    # When an endpoint is created with every field set
    result = api.simulate_post(
        ENDPOINTS,
        json={
            "url": f"{QUIET_URL}/orders",
            "events": [COMPLETED, STATUS_CHANGED],
            "description": "Zapier: new listing video",
            "retry_schedule": ["0s", "5m", "2h"],
            "timeout_seconds": 5,
        },
        headers=auth,
    )

    # Then it is 201 with its location, its own whsec_ secret, and durations in seconds
    assert result.status_code == 201, result.text
    created = result.json
    assert result.headers["location"] == f"{ENDPOINTS}/{created['id']}"
    assert created["object"] == "webhook_endpoint"
    assert created["secret"].startswith("whsec_")
    assert created["url"] == f"{QUIET_URL}/orders"
    assert created["events"] == [COMPLETED, STATUS_CHANGED]
    assert created["description"] == "Zapier: new listing video"
    assert created["enabled"] is True and created["disabled_reason"] is None
    assert created["retry_schedule"] == [0, 300, 7200]
    assert created["timeout_seconds"] == 5

    # And reading it back shows the same endpoint without the secret
    one = api.simulate_get(result.headers["location"], headers=auth)
    assert one.status_code == 200, one.text
    assert "secret" not in one.json
    assert one.json == {k: v for k, v in created.items() if k != "secret"}

    # And the list holds it, also without the secret
    listed = api.simulate_get(ENDPOINTS, headers=auth).json
    assert listed["object"] == "list"
    assert listed["data"] == [one.json]


def test_an_endpoint_created_with_only_a_url_gets_the_defaults(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    created = create_endpoint(api, auth, QUIET_URL)

    # status_changed is opt-in; schedule and timeout follow the server's settings
    assert created["events"] == [COMPLETED, FAILED, CANCELED]
    assert created["description"] == "" and created["enabled"] is True
    assert created["retry_schedule"] is None and created["timeout_seconds"] is None


def test_patch_changes_fields_and_null_resets_the_overrides(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    # Given an endpoint with default delivery settings
    endpoint_id = create_endpoint(api, auth, QUIET_URL)["id"]

    # When every field is changed, with the schedule given as duration strings
    changed = patch_endpoint(
        api,
        auth,
        endpoint_id,
        url=f"{QUIET_URL}/v2",
        events=[FAILED],
        description="ops pager",
        enabled=False,
        retry_schedule=["5m", "30m", "2h", "5h", "10h"],
        timeout_seconds=30,
    )

    # Then the endpoint says so, the schedule normalised to seconds
    assert changed["url"] == f"{QUIET_URL}/v2"
    assert changed["events"] == [FAILED]
    assert changed["description"] == "ops pager"
    assert changed["enabled"] is False and changed["disabled_reason"]
    assert changed["retry_schedule"] == [300, 1800, 7200, 18000, 36000]
    assert changed["timeout_seconds"] == 30

    # When the overrides are set to null and the endpoint is turned back on
    reset = patch_endpoint(
        api, auth, endpoint_id, retry_schedule=None, timeout_seconds=None, enabled=True
    )

    # Then it follows the server's defaults again and the other fields are untouched
    assert reset["retry_schedule"] is None and reset["timeout_seconds"] is None
    assert reset["enabled"] is True and reset["disabled_reason"] is None
    assert (reset["url"], reset["events"], reset["description"]) == (
        f"{QUIET_URL}/v2",
        [FAILED],
        "ops pager",
    )
    assert api.simulate_get(f"{ENDPOINTS}/{endpoint_id}", headers=auth).json == reset


def test_a_deleted_endpoint_is_gone(api: testing.TestClient, auth: dict[str, str]) -> None:
    # Given two endpoints
    kept = create_endpoint(api, auth, f"{QUIET_URL}/kept")["id"]
    deleted = create_endpoint(api, auth, f"{QUIET_URL}/deleted")["id"]

    # When one is deleted
    result = api.simulate_delete(f"{ENDPOINTS}/{deleted}", headers=auth)

    # Then it is 204, reading it is 404, the list no longer has it, and deleting again is 404
    assert result.status_code == 204, result.text
    assert_problem(api.simulate_get(f"{ENDPOINTS}/{deleted}", headers=auth), 404)
    assert endpoint_ids(api, auth) == [kept]
    assert_problem(api.simulate_delete(f"{ENDPOINTS}/{deleted}", headers=auth), 404)


def test_an_account_has_at_most_twenty_endpoints_and_deleting_frees_a_place(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    # Given an account with as many endpoints as it may have
    ids = [
        create_endpoint(api, auth, f"{QUIET_URL}/{n}")["id"]
        for n in range(MAX_ENDPOINTS_PER_ACCOUNT)
    ]

    # When it registers one more, it is refused and nothing is written
    result = api.simulate_post(ENDPOINTS, json={"url": f"{QUIET_URL}/extra"}, headers=auth)
    assert_problem(result, 409)
    assert len(endpoint_ids(api, auth)) == MAX_ENDPOINTS_PER_ACCOUNT

    # Then deleting one makes room again
    assert api.simulate_delete(f"{ENDPOINTS}/{ids[0]}", headers=auth).status_code == 204
    create_endpoint(api, auth, f"{QUIET_URL}/extra")


# --- Validation --------------------------------------------------------------------------

INVALID_BODIES = [
    pytest.param({"url": "ftp://127.0.0.1/hooks"}, "url", id="ftp-url"),
    pytest.param({"url": "http://"}, "url", id="url-without-host"),
    pytest.param({"url": "http://user:pass@127.0.0.1/hooks"}, "url", id="url-with-credentials"),
    pytest.param({"events": ["video.generation.started"]}, "events", id="unknown-event"),
    pytest.param({"events": [COMPLETED, COMPLETED]}, "events", id="duplicate-events"),
    pytest.param({"events": []}, "events", id="no-events"),
    pytest.param({"retry_schedule": ["0s", "5x"]}, "retry_schedule", id="schedule-5x"),
    pytest.param({"retry_schedule": [0, -5]}, "retry_schedule", id="schedule-negative"),
    pytest.param({"retry_schedule": ["-5s"]}, "retry_schedule", id="schedule-negative-string"),
    pytest.param({"retry_schedule": ["1s"] * 21}, "retry_schedule", id="schedule-21-entries"),
    pytest.param({"retry_schedule": []}, "retry_schedule", id="schedule-empty"),
    pytest.param({"retry_schedule": [True]}, "retry_schedule", id="schedule-boolean"),
    pytest.param({"timeout_seconds": 61}, "timeout_seconds", id="timeout-over-60"),
    pytest.param({"timeout_seconds": 0}, "timeout_seconds", id="timeout-zero"),
    pytest.param({"enabled": 0}, "enabled", id="enabled-a-number"),
    pytest.param({"enabled": "true"}, "enabled", id="enabled-a-string"),
    pytest.param({"timeout_seconds": True}, "timeout_seconds", id="timeout-boolean"),
    pytest.param({"secret": "whsec_mine"}, "secret", id="unknown-field"),
]


@pytest.mark.parametrize(("changes", "field"), INVALID_BODIES)
def test_an_invalid_endpoint_is_refused_naming_the_field(
    api: testing.TestClient, auth: dict[str, str], changes: dict[str, object], field: str
) -> None:
    # Given an account with one endpoint
    existing = [*endpoint_ids(api, auth), create_endpoint(api, auth, QUIET_URL)["id"]]

    # When an endpoint with one bad field is created
    body = {"url": f"{QUIET_URL}/new", **changes}
    result = api.simulate_post(ENDPOINTS, json=body, headers=auth)

    # Then it is a 422 naming the field, and nothing was written
    assert_problem(result, 422, field)
    assert endpoint_ids(api, auth) == existing


NULLS_THAT_RESET_NOTHING = [
    pytest.param({name: None}, name, id=f"null-{name}")
    for name in ("url", "events", "description", "enabled")
]


@pytest.mark.parametrize(("changes", "field"), INVALID_BODIES + NULLS_THAT_RESET_NOTHING)
def test_an_invalid_change_is_refused_naming_the_field(
    api: testing.TestClient, auth: dict[str, str], changes: dict[str, object], field: str
) -> None:
    # Given an endpoint
    endpoint = create_endpoint(api, auth, QUIET_URL)
    del endpoint["secret"]

    # When one field is changed to something invalid
    result = api.simulate_patch(f"{ENDPOINTS}/{endpoint['id']}", json=changes, headers=auth)

    # Then it is a 422 naming the field, and the endpoint is unchanged
    assert_problem(result, 422, field)
    assert api.simulate_get(f"{ENDPOINTS}/{endpoint['id']}", headers=auth).json == endpoint


NON_PUBLIC_URLS = [
    pytest.param("http://localhost:9/hooks", id="localhost"),
    pytest.param("http://127.0.0.1:9/hooks", id="loopback-v4"),
    pytest.param("http://[::1]:9/hooks", id="loopback-v6"),
    pytest.param("http://10.0.0.5/hooks", id="private"),
    pytest.param("http://169.254.169.254/", id="cloud-metadata"),
    pytest.param("http://[::ffff:10.0.0.1]/", id="ipv4-mapped-private"),
]


@pytest.fixture
def strict_api(ctx: Context) -> testing.TestClient:
    """The API of a server whose operator allowed no private network, not even loopback."""
    settings = ctx.settings.model_copy(update={"webhook_allowed_networks": []})
    return testing.TestClient(create_app(dataclasses.replace(ctx, settings=settings)))


@pytest.mark.parametrize("url", NON_PUBLIC_URLS)
def test_a_non_public_url_is_refused_when_registered(
    strict_api: testing.TestClient, auth: dict[str, str], url: str
) -> None:
    # When an endpoint pointing at a non-public address is created
    result = strict_api.simulate_post(ENDPOINTS, json={"url": url}, headers=auth)

    # Then it is a 422 naming the url, and nothing was written
    assert_problem(result, 422, "url")
    assert endpoint_ids(strict_api, auth) == []


@pytest.mark.parametrize("url", NON_PUBLIC_URLS)
def test_a_non_public_url_is_refused_when_changed_to(
    api: testing.TestClient, strict_api: testing.TestClient, auth: dict[str, str], url: str
) -> None:
    # Given an endpoint (registered while loopback was allowed)
    endpoint = create_endpoint(api, auth, QUIET_URL)

    # When the strict server is asked to point it at a non-public address
    result = strict_api.simulate_patch(
        f"{ENDPOINTS}/{endpoint['id']}", json={"url": url}, headers=auth
    )

    # Then it is a 422 naming the url, and the endpoint keeps its URL
    assert_problem(result, 422, "url")
    assert api.simulate_get(f"{ENDPOINTS}/{endpoint['id']}", headers=auth).json["url"] == QUIET_URL


# --- Isolation ---------------------------------------------------------------------------


@with_worker
def test_another_account_cannot_see_or_touch_an_endpoint_or_its_deliveries(
    api: testing.TestClient,
    auth: dict[str, str],
    ctx: Context,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given an endpoint with one delivery, and a second account
    app, url = receiver
    endpoint = create_endpoint(api, auth, f"{url}/mine")
    job_id = submit(api, auth)["id"]
    (delivery,) = settled_deliveries(api, auth, job_id)
    other = bearer(create_account(ctx, "other@example.com"))
    since = {"since": "2020-01-01T00:00:00Z"}
    endpoint_path = f"{ENDPOINTS}/{endpoint['id']}"

    # Then every way the other account reaches for them is a 404
    attempts = {
        "get": api.simulate_get(endpoint_path, headers=other),
        "patch": api.simulate_patch(endpoint_path, json={"enabled": False}, headers=other),
        "delete": api.simulate_delete(endpoint_path, headers=other),
        "secret": api.simulate_get(f"{endpoint_path}/secret", headers=other),
        "rotate": api.simulate_post(f"{endpoint_path}/rotate-secret", headers=other),
        "recover": api.simulate_post(f"{endpoint_path}/recover", json=since, headers=other),
        "job deliveries": api.simulate_get(f"{GENERATIONS}/{job_id}/deliveries", headers=other),
        "delivery": api.simulate_get(f"/v1/deliveries/{delivery['id']}", headers=other),
        "redeliver": api.simulate_post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=other),
    }
    assert {name: r.status_code for name, r in attempts.items()} == dict.fromkeys(attempts, 404)

    # And its own list is empty, while the owner's endpoint is untouched and sent nothing more
    assert endpoint_ids(api, other) == []
    del endpoint["secret"]
    assert api.simulate_get(endpoint_path, headers=auth).json == endpoint
    secret = api.simulate_get(f"{endpoint_path}/secret", headers=auth).json
    assert secret["previous_secret_expires_at"] is None
    assert len(app.requests) == 1


# --- Fan-out -----------------------------------------------------------------------------


@with_worker
def test_a_job_event_goes_to_its_own_url_and_to_each_subscribed_endpoint(
    api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given one endpoint subscribed to completions and one only to failures
    app, url = receiver
    on_completed = create_endpoint(api, auth, f"{url}/completed", events=[COMPLETED])
    create_endpoint(api, auth, f"{url}/failed", events=[FAILED])

    # When a job with its own webhook_url completes
    job_id = submit(api, auth, webhook_url=f"{url}/job")["id"]
    settled_deliveries(api, auth, job_id)

    # Then the job's URL and the completions endpoint each get exactly one POST
    assert sorted(request.path for request in app.requests) == ["/completed", "/job"]
    (to_job,) = sent_to(app, "/job")
    (to_endpoint,) = sent_to(app, "/completed")

    # ...the job's URL signed with the account's secret, both ways
    account_secret = account.signing_secret
    assert Webhook(account_secret).verify(to_job.body, to_job.headers)["id"] == job_id
    assert to_job.headers["x-genhook-signature"] == genhook_signature(account_secret, to_job.body)

    # ...and the endpoint with its own secret, both ways, and not with the account's
    secret = on_completed["secret"]
    assert Webhook(secret).verify(to_endpoint.body, to_endpoint.headers)["id"] == job_id
    assert to_endpoint.headers["x-genhook-signature"] == genhook_signature(secret, to_endpoint.body)
    assert not signed_by(account_secret, to_endpoint)
    assert to_endpoint.headers["x-genhook-event"] == COMPLETED


@with_worker
def test_a_disabled_endpoint_gets_nothing(
    api: testing.TestClient, auth: dict[str, str], receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given a subscribed endpoint that was disabled, next to an enabled one
    app, url = receiver
    disabled = create_endpoint(api, auth, f"{url}/disabled", events=[COMPLETED])
    patch_endpoint(api, auth, disabled["id"], enabled=False)
    create_endpoint(api, auth, f"{url}/enabled", events=[COMPLETED])

    # When a job completes
    job_id = submit(api, auth)["id"]
    settled_deliveries(api, auth, job_id)

    # Then only the enabled endpoint heard of it
    assert [request.path for request in app.requests] == ["/enabled"]


@with_worker
def test_an_endpoint_at_the_jobs_own_url_gets_one_copy(
    api: testing.TestClient, auth: dict[str, str], receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given an endpoint registered at the very URL a job names as its webhook_url
    app, url = receiver
    create_endpoint(api, auth, f"{url}/same", events=[COMPLETED])

    # When that job completes
    job_id = submit(api, auth, webhook_url=f"{url}/same")["id"]
    deliveries = settled_deliveries(api, auth, job_id)

    # Then the URL gets the event once
    assert len(deliveries) == 1
    assert [request.path for request in app.requests] == ["/same"]


# --- status_changed ----------------------------------------------------------------------


@with_worker
def test_status_changes_go_only_to_endpoints_that_opted_in(
    api: testing.TestClient, auth: dict[str, str], receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given one endpoint that opted in to phase changes and one that did not
    app, url = receiver
    watcher = create_endpoint(api, auth, f"{url}/watcher", events=[STATUS_CHANGED])
    create_endpoint(api, auth, f"{url}/results", events=[COMPLETED, FAILED])

    # When a job with its own webhook_url goes through its phases and completes
    job_id = submit(api, auth, webhook_url=f"{url}/job")["id"]
    settled_deliveries(api, auth, job_id)
    job = api.simulate_get(f"{GENERATIONS}/{job_id}", headers=auth).json

    # Then the watcher got one signed POST per phase the job entered while processing
    chain = job["status_chain"]
    entered = [
        link["phase"]
        for before, link in itertools.pairwise(chain)
        if link["status"] == "processing" and link["phase"] != before["phase"]
    ]
    assert entered, chain  # the render went through phases at all
    watched = sent_to(app, "/watcher")
    payloads = [Webhook(watcher["secret"]).verify(h.body, h.headers) for h in watched]
    # (each phase is its own delivery, so two may arrive out of order)
    assert sorted((p["phase"] for p in payloads), key=PHASES.index) == entered
    # ...each telling how far along it is and when it should be done
    assert all(p["progress"] is not None for p in payloads)
    assert any(p["eta_seconds"] is not None for p in payloads)
    assert {p["event"] for p in payloads} == {STATUS_CHANGED}
    assert {h.headers["x-genhook-event"] for h in watched} == {STATUS_CHANGED}

    # And the others got only the completion
    assert [json.loads(h.body)["event"] for h in sent_to(app, "/results")] == [COMPLETED]
    assert [json.loads(h.body)["event"] for h in sent_to(app, "/job")] == [COMPLETED]


# --- Secret rotation ---------------------------------------------------------------------


def rotate(
    api: testing.TestClient, auth: dict[str, str], account: NewAccount, kind: str, url: str
) -> tuple[str, dict[str, Any], dict[str, object]]:
    """Rotate the secret that signs webhooks to ``url``: an endpoint's, or the account's
    (which signs each job's own webhook_url). Returns the old secret, the rotation's answer
    and the fields of a job whose webhook goes to ``url``."""
    if kind == "endpoint":
        endpoint = create_endpoint(api, auth, url, events=[COMPLETED])
        old, path, job_fields = endpoint["secret"], f"{ENDPOINTS}/{endpoint['id']}", {}
        result = api.simulate_post(f"{path}/rotate-secret", headers=auth)
    else:
        old, job_fields = account.signing_secret, {"webhook_url": url}
        result = api.simulate_post("/v1/account/rotate-signing-secret", headers=auth)
    assert result.status_code == 200, result.text
    return old, dict(result.json), job_fields


ROTATIONS = [pytest.param("endpoint", id="endpoint-secret"), pytest.param("account", id="account")]


@with_worker
@pytest.mark.parametrize("kind", ROTATIONS)
def test_during_a_rotation_both_secrets_sign(
    api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
    kind: str,
) -> None:
    # When a secret is rotated (the overlap is the default 24 h)
    app, url = receiver
    before = datetime.now(UTC)
    old, rotated, job_fields = rotate(api, auth, account, kind, f"{url}/hooks")

    # Then a new whsec_ secret comes back, the old one signing for 24 h more
    new = rotated["secret"]
    assert new.startswith("whsec_") and new != old
    expires = parse_time(rotated["previous_secret_expires_at"])
    assert before + timedelta(hours=24) <= expires <= datetime.now(UTC) + timedelta(hours=24)

    # When a job's webhook is sent during the overlap
    settled_deliveries(api, auth, submit(api, auth, **job_fields)["id"])
    (hook,) = app.requests

    # Then it carries two v1 signatures, and each secret verifies it on its own
    signatures = hook.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert signed_by(new, hook) and signed_by(old, hook)

    # ...while X-Genhook-Signature is made with the new secret only
    assert hook.headers["x-genhook-signature"] == genhook_signature(new, hook.body)


@pytest.fixture
def short_overlap_api(ctx: Context) -> testing.TestClient:
    """The API of a server where an old secret signs for only 0.2 s after a rotation."""
    settings = ctx.settings.model_copy(update={"webhook_secret_overlap_seconds": 0.2})
    return testing.TestClient(create_app(dataclasses.replace(ctx, settings=settings)))


@with_worker
@pytest.mark.parametrize("kind", ROTATIONS)
def test_after_the_overlap_only_the_new_secret_signs(
    short_overlap_api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
    kind: str,
) -> None:
    # Given a rotation whose overlap has ended
    api, (app, url) = short_overlap_api, receiver
    old, rotated, job_fields = rotate(api, auth, account, kind, f"{url}/hooks")
    expires = parse_time(rotated["previous_secret_expires_at"])
    wait_until(lambda: datetime.now(UTC) > expires)

    # When a job's webhook is sent
    settled_deliveries(api, auth, submit(api, auth, **job_fields)["id"])
    (hook,) = app.requests

    # Then only the new secret signs it
    assert hook.headers["webhook-signature"].count("v1,") == 1
    assert signed_by(rotated["secret"], hook)
    assert not signed_by(old, hook)
    assert hook.headers["x-genhook-signature"] == genhook_signature(rotated["secret"], hook.body)


def test_the_secret_resource_shows_the_rotated_secret(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    # Given an endpoint whose secret was rotated
    endpoint = create_endpoint(api, auth, QUIET_URL)
    path = f"{ENDPOINTS}/{endpoint['id']}"
    assert api.simulate_get(f"{path}/secret", headers=auth).json["secret"] == endpoint["secret"]
    rotated = api.simulate_post(f"{path}/rotate-secret", headers=auth).json

    # Then its secret resource gives the new secret and when the old one stops signing
    current = api.simulate_get(f"{path}/secret", headers=auth).json
    assert current["secret"] == rotated["secret"] != endpoint["secret"]
    assert current["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]


# --- Delivery log ------------------------------------------------------------------------


@with_worker
def test_the_delivery_log_shows_each_attempt_with_a_bounded_excerpt(
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
    ctx: Context,
    account: NewAccount,
) -> None:
    # Given an account allowed private targets (it may read what its loopback receiver
    # answers), and a receiver that first fails with a 100 KB answer, then accepts
    set_private_webhooks(ctx, account.account.email, True)
    app, url = receiver
    app.reply(
        Reply("500 Internal Server Error", body=b"x" * 100_000),
        Reply("200 OK", body=b"thanks"),
    )

    # When a job's webhook is delivered
    started = datetime.now(UTC)
    job_id = submit(api, auth, webhook_url=f"{url}/job")["id"]
    (delivery,) = settled_deliveries(api, auth, job_id)

    # Then the log shows one delivery to the job's own URL, delivered on the second attempt
    assert delivery["object"] == "webhook_delivery"
    assert delivery["generation_id"] == job_id and delivery["endpoint_id"] is None
    assert delivery["event"] == COMPLETED and delivery["url"] == f"{url}/job"
    assert delivery["status"] == "delivered" and delivery["attempt_count"] == 2
    assert delivery["id"] == app.requests[0].headers["webhook-id"]

    # ...each attempt with its time, status, latency, error and at most 256 B of the answer
    failed, succeeded = delivery["attempts"]
    assert started <= parse_time(failed["attempted_at"]) <= parse_time(succeeded["attempted_at"])
    assert (failed["response_status"], succeeded["response_status"]) == (500, 200)
    assert "500" in failed["error"] and succeeded["error"] is None
    assert failed["response_body"] == "x" * MAX_LOGGED_BODY_CHARS == "x" * 256
    assert succeeded["response_body"] == "thanks"
    assert all(a["latency_ms"] >= 0 for a in (failed, succeeded))

    # And the delivery reads the same on its own
    one = api.simulate_get(f"/v1/deliveries/{delivery['id']}", headers=auth)
    assert one.status_code == 200, one.text
    assert one.json == delivery


def test_the_delivery_log_of_an_unknown_job_or_delivery_is_404(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    assert_problem(api.simulate_get(f"{GENERATIONS}/gen_unknown/deliveries", headers=auth), 404)
    assert_problem(api.simulate_get("/v1/deliveries/dlv_unknown", headers=auth), 404)
    assert_problem(api.simulate_post("/v1/deliveries/dlv_unknown/redeliver", headers=auth), 404)


# --- Redeliver ---------------------------------------------------------------------------


@with_worker
def test_a_redelivery_sends_once_more_with_the_same_webhook_id(
    api: testing.TestClient, auth: dict[str, str], receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given a webhook that was delivered
    app, url = receiver
    job_id = submit(api, auth, webhook_url=f"{url}/job")["id"]
    (delivery,) = settled_deliveries(api, auth, job_id)
    assert delivery["status"] == "delivered"

    # When it is redelivered
    result = api.simulate_post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=auth)

    # Then it is accepted, and the receiver gets it once more, with the same webhook-id
    assert result.status_code == 202, result.text
    assert result.json["id"] == delivery["id"]
    wait_until(lambda: delivery_status(api, auth, delivery["id"]) == "delivered")
    first, again = app.wait_for(2)
    assert len(app.requests) == 2
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == delivery["id"]
    assert again.body == first.body


@with_worker
@pytest.mark.parametrize("how", ["disabled", "deleted"])
def test_a_delivery_to_a_disabled_or_deleted_endpoint_cannot_be_redelivered(
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
    how: str,
) -> None:
    # Given a delivered webhook whose endpoint was then disabled or deleted
    app, url = receiver
    endpoint = create_endpoint(api, auth, f"{url}/endpoint")
    (delivery,) = settled_deliveries(api, auth, submit(api, auth)["id"])
    path = f"{ENDPOINTS}/{endpoint['id']}"
    if how == "disabled":
        patch_endpoint(api, auth, endpoint["id"], enabled=False)
    else:
        assert api.simulate_delete(path, headers=auth).status_code == 204

    # When it is redelivered
    result = api.simulate_post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=auth)

    # Then it is a conflict and the delivery stays as it was
    assert_problem(result, 409)
    assert delivery_status(api, auth, delivery["id"]) == "delivered"
    assert len(app.requests) == 1


# --- Recover -----------------------------------------------------------------------------


@with_worker
def test_recover_resends_the_failed_deliveries_since_a_time(
    api: testing.TestClient, auth: dict[str, str], receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given an endpoint (one attempt per round) whose receiver answers 500 for now
    app, url = receiver
    app.status = "500 Internal Server Error"
    endpoint = create_endpoint(api, auth, f"{url}/endpoint", retry_schedule=["0s"])

    # ...a delivery that failed before the time we recover from
    (older,) = settled_deliveries(api, auth, submit(api, auth)["id"])
    since = datetime.now(UTC)

    # ...two that failed after it
    failing = [submit(api, auth)["id"], submit(api, auth)["id"]]
    failed = [settled_deliveries(api, auth, job_id)[0] for job_id in failing]
    assert {d["status"] for d in [older, *failed]} == {"failed"}

    # ...and, once the receiver is fixed, one that was delivered
    app.status = "200 OK"
    (delivered,) = settled_deliveries(api, auth, submit(api, auth)["id"])
    assert delivered["status"] == "delivered"
    first_ids = [request.headers["webhook-id"] for request in app.requests]

    # When the endpoint is recovered since that time
    result = api.simulate_post(
        f"{ENDPOINTS}/{endpoint['id']}/recover", json={"since": since.isoformat()}, headers=auth
    )

    # Then exactly the failed deliveries since then are queued, oldest first
    assert result.status_code == 202, result.text
    recovered = sorted(failed, key=lambda d: d["created_at"])
    assert result.json["delivery_ids"] == [d["id"] for d in recovered]

    # ...and each is sent again with its original webhook-id, and now delivered
    for delivery in recovered:
        wait_until(lambda d=delivery: delivery_status(api, auth, d["id"]) == "delivered")
    resent = [request.headers["webhook-id"] for request in app.requests[len(first_ids) :]]
    assert sorted(resent) == sorted(d["id"] for d in recovered)
    assert sorted(first_ids) == sorted(d["id"] for d in [older, *failed, delivered])
    assert delivery_status(api, auth, older["id"]) == "failed"


def test_a_disabled_endpoint_cannot_be_recovered(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    # Given a disabled endpoint
    endpoint = create_endpoint(api, auth, QUIET_URL)
    patch_endpoint(api, auth, endpoint["id"], enabled=False)

    # When it is recovered, then it is a conflict
    since = {"since": "2020-01-01T00:00:00Z"}
    result = api.simulate_post(f"{ENDPOINTS}/{endpoint['id']}/recover", json=since, headers=auth)
    assert_problem(result, 409)


@pytest.mark.parametrize(
    "since",
    [
        pytest.param("2020-01-01T00:00:00", id="no-time-zone"),
        pytest.param("yesterday", id="not-a-time"),
    ],
)
def test_recover_needs_a_time_with_a_zone(
    api: testing.TestClient, auth: dict[str, str], since: str
) -> None:
    endpoint = create_endpoint(api, auth, QUIET_URL)
    result = api.simulate_post(
        f"{ENDPOINTS}/{endpoint['id']}/recover", json={"since": since}, headers=auth
    )
    assert_problem(result, 422, "since")


# --- OpenAPI -----------------------------------------------------------------------------

NEW_OPERATIONS = {
    "/v1/webhook-endpoints": {"get", "post"},
    "/v1/webhook-endpoints/{endpoint_id}": {"get", "patch", "delete"},
    "/v1/webhook-endpoints/{endpoint_id}/secret": {"get"},
    "/v1/webhook-endpoints/{endpoint_id}/rotate-secret": {"post"},
    "/v1/webhook-endpoints/{endpoint_id}/recover": {"post"},
    "/v1/account/rotate-signing-secret": {"post"},
    "/v1/video/generations/{job_id}/deliveries": {"get"},
    "/v1/deliveries/{delivery_id}": {"get"},
    "/v1/deliveries/{delivery_id}/redeliver": {"post"},
}


def test_the_openapi_document_describes_every_webhook_operation(
    api: testing.TestClient,
) -> None:
    # When the document is fetched
    result = api.simulate_get("/openapi.json")
    assert result.status_code == 200
    document = result.json

    # Then it is valid OpenAPI and lists every new path with its methods
    validate(document)
    assert {path: set(document["paths"].get(path, {})) for path in NEW_OPERATIONS} == (
        NEW_OPERATIONS
    )

    # ...creating an endpoint answers 201 with a Location and the one-time secret
    create = document["paths"]["/v1/webhook-endpoints"]["post"]
    assert create["responses"]["201"]["headers"]["Location"]
    created = create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert created.endswith("/WebhookEndpointCreated")
    schemas = document["components"]["schemas"]
    assert "secret" in schemas["WebhookEndpointCreated"]["properties"]
    assert "secret" not in schemas["WebhookEndpoint"]["properties"]
