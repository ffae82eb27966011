"""The core story: submit -> render on the simulator -> signed webhook -> polled result.

Runs an in-process Dramatiq worker against real Redis, the simulator and a webhook
receiver on real 127.0.0.1 sockets, on SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
from falcon import testing
from standardwebhooks import Webhook

from backend.accounts import NewAccount
from backend.context import Context
from backend.store import accounts as accounts_store
from tests.support.api import submit, wait_for_status
from tests.support.faults import inject_fault, stats
from tests.support.receiver import WebhookReceiver

pytestmark = pytest.mark.usefixtures("worker")


def balance(ctx: Context, account: NewAccount) -> int:
    with ctx.store.begin() as conn:
        found = accounts_store.get_account(conn, account.account.id)
        assert found is not None
        assert accounts_store.ledger_balance(conn, found.id) == found.credits
        return found.credits


def test_a_completed_job_posts_a_webhook_signed_both_ways(
    api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a receiver URL with a query string and some metadata
    app, url = receiver
    webhook_url = f"{url}/hooks/genhook?listing=42"

    # When a job is submitted
    accepted = submit(api, auth, webhook_url=webhook_url, metadata={"sku": "A-1"})
    assert accepted["status"] == "pending" and accepted["phase"] == "queued"

    # Then exactly one webhook arrives, to the URL exactly as given
    (hook,) = app.wait_for(1)
    assert hook.method == "POST" and hook.path == "/hooks/genhook" and hook.query == "listing=42"
    assert hook.headers["content-type"] == "application/json"
    assert hook.headers["x-genhook-event"] == "video.generation.completed"

    # ...signed with the account's secret string as the HMAC key (the product page's scheme)
    secret = account.signing_secret
    expected = "sha256=" + hmac.new(secret.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(hook.headers["x-genhook-signature"], expected)

    # ...and per Standard Webhooks, as the reference library verifies it
    payload = Webhook(secret).verify(hook.body, hook.headers)
    assert hook.headers["webhook-id"] == hook.headers["x-genhook-delivery-id"]

    # ...carrying the result
    assert payload["id"] == accepted["id"]
    assert payload["object"] == "video.generation"
    assert payload["status"] == "completed"
    assert payload["metadata"] == {"sku": "A-1"}
    assert payload["credits"] == 3 and payload["failover_used"] is False
    # ...with genhook's own signed link to the video, the provider's URL kept in the chain
    assert "/v1/outputs/" + accepted["id"] + "?expires=" in payload["output_url"]
    assert payload["status_chain"][-1]["event"] == "output_stored"
    assert payload["status_chain"][-1]["provider_output_url"].endswith(".mp4")
    assert "error" in payload and payload["error"] is None
    phases = [link["phase"] for link in payload["status_chain"]]
    assert phases[0] == "queued" and phases[-1] == "finishing"

    # And polling shows the same completed job, whose video is a real MP4
    job = wait_for_status(api, auth, accepted["id"], "completed")
    assert job["completed_at"] is not None and job["eta_seconds"] is None
    # (its link is signed afresh on every read, so it may differ from the webhook's)
    link = httpx.URL(job["output_url"])
    assert link.path == httpx.URL(payload["output_url"]).path
    video = api.simulate_get(link.path, query_string=link.query.decode())
    assert video.headers["content-type"] == "video/mp4" and video.content[4:8] == b"ftyp"


def test_a_tampered_body_fails_verification(
    api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    app, url = receiver
    submit(api, auth, webhook_url=url)
    (hook,) = app.wait_for(1)
    tampered = hook.body.replace(b'"completed"', b'"failed"', 1)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(account.signing_secret).verify(tampered, hook.headers)


def test_a_render_failure_refunds_once_and_posts_a_failed_webhook(
    api: testing.TestClient,
    auth: dict[str, str],
    ctx: Context,
    account: NewAccount,
    simulator: str,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given the provider will fail the next render mid-way
    inject_fault(simulator, on="render", code="content_policy")
    app, url = receiver

    # When a job is submitted
    accepted = submit(api, auth, webhook_url=url)

    # Then the webhook reports the failure with its reason
    (hook,) = app.wait_for(1)
    payload = json.loads(hook.body)
    assert hook.headers["x-genhook-event"] == "video.generation.failed"
    assert payload["status"] == "failed" and payload["output_url"] is None
    assert payload["error"]["code"] == "content_policy"

    # And the credits are back, exactly once
    job = wait_for_status(api, auth, accepted["id"], "failed")
    assert job["refunded"] is True
    assert balance(ctx, account) == 50


def test_transient_poll_errors_are_ridden_out(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given the provider answers three polls with 5xx
    inject_fault(simulator, on="poll", status=503, times=3)

    # When a job is submitted, it still completes and is charged
    accepted = submit(api, auth)
    wait_for_status(api, auth, accepted["id"], "completed")
    assert balance(ctx, account) == 47
    assert stats(simulator)["polls"] >= 4  # the three faulted polls and a good one


def test_too_many_consecutive_poll_errors_fail_and_refund(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given the provider answers every poll with 502 (more than the 5 tolerated)
    inject_fault(simulator, on="poll", status=502, times=100)

    accepted = submit(api, auth)

    job = wait_for_status(api, auth, accepted["id"], "failed")
    assert job["error"]["code"] == "provider_unavailable"
    assert balance(ctx, account) == 50


def test_a_rate_limited_submission_is_retried(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given the provider throttles the first two submissions
    inject_fault(simulator, on="submit", status=429, times=2)

    accepted = submit(api, auth)

    job = wait_for_status(api, auth, accepted["id"], "completed")
    assert job["output_url"]
    assert stats(simulator)["submits"] == 3


def test_phase_changes_are_recorded_in_order(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    accepted = submit(api, auth)
    job = wait_for_status(api, auth, accepted["id"], "completed")
    statuses = [link["status"] for link in job["status_chain"]]
    assert statuses[0] == "pending" and statuses[-1] == "completed"
    assert "processing" in statuses
    order = ["queued", "preparing", "rendering", "encoding", "finishing"]
    seen = [order.index(link["phase"]) for link in job["status_chain"]]
    assert seen == sorted(seen)
    assert job["last_polled_at"] is not None
