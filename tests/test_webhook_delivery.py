"""Delivery guarantees: a receiver that is down, slow, failing, gone, redirecting or asking
for patience never costs a user a result, and nothing is ever sent twice by accident.

Real receivers on 127.0.0.1, real Redis, and (where the story allows) the real worker;
the delivery log is read through the API, as a user would read it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from falcon import testing
from standardwebhooks import Webhook

from backend import bundled_redis, redis_keys
from backend.accounts import NewAccount, create_account, set_private_webhooks
from backend.broker import build_broker
from backend.context import Context, build_context, use_context
from backend.jobs.create import create_generation
from backend.jobs.deliver import deliver
from backend.jobs.finish import fail
from backend.jobs.sweep import probe_waiting_destinations
from backend.queue import Queue
from backend.schemas.generations import GenerationCreate
from backend.settings import Settings
from backend.store import deliveries as deliveries_store
from backend.store.tables import deliveries, delivery_attempts
from tests.conftest import wait_until
from tests.support.api import deliveries_of, read_delivery, submit, wait_for_status
from tests.support.receiver import Reply, WebhookReceiver
from tests.support.wsgi_server import serve_wsgi

pytestmark = pytest.mark.usefixtures("worker")

FAILING = Reply("500 Internal Server Error", body=b"database is down")


# --- helpers -------------------------------------------------------------------------


@pytest.fixture
def lossy(ctx: Context) -> Context:
    """The same process, but every enqueue fails: the test decides when a delivery runs."""
    return dataclasses.replace(ctx, queue=Queue(build_broker("redis://127.0.0.1:1/0")))


def with_settings(ctx: Context, **changes: Any) -> Context:
    """Install ``ctx`` with ``changes`` to its settings as the context the worker uses."""
    changed = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update=changes))
    use_context(changed)
    return changed


def first_attempt(api: testing.TestClient, auth: dict[str, str], job_id: str) -> dict:
    """The generation's only delivery, once its first attempt is logged."""

    def logged() -> dict | None:
        found = deliveries_of(api, auth, job_id)
        return found[0] if found and found[0]["attempts"] else None

    return wait_until(logged)


def settled(api: testing.TestClient, auth: dict[str, str], job_id: str) -> dict:
    """The generation's only delivery, once it is delivered or failed."""

    def done() -> dict | None:
        found = deliveries_of(api, auth, job_id)
        assert len(found) <= 1, found
        return found[0] if found and found[0]["status"] != "pending" else None

    return wait_until(done)


def statuses(delivery: dict) -> list[int | None]:
    return [attempt["response_status"] for attempt in delivery["attempts"]]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def gaps(delivery: dict) -> list[float]:
    """Seconds between one attempt and the next."""
    times = [at(attempt["attempted_at"]) for attempt in delivery["attempts"]]
    return [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]


def create_endpoint(
    api: testing.TestClient, auth: dict[str, str], url: str, **fields: object
) -> dict:
    result = api.simulate_post("/v1/webhook-endpoints", json={"url": url, **fields}, headers=auth)
    assert result.status_code == 201, result.text
    return dict(result.json)


def read_endpoint(api: testing.TestClient, auth: dict[str, str], endpoint_id: str) -> dict:
    result = api.simulate_get(f"/v1/webhook-endpoints/{endpoint_id}", headers=auth)
    assert result.status_code == 200, result.text
    return dict(result.json)


def ended_job_with_pending_delivery(ctx: Context, account: NewAccount, url: str) -> str:
    """A generation that has ended (failed at once) with a pending delivery to ``url``;
    returns the delivery id. Its messages go wherever ``ctx.queue`` sends them."""
    request = GenerationCreate(model="kling-v3", prompt="p", webhook_url=url)
    job = create_generation(ctx, account.account.id, request)
    fail(ctx, job.id, code="provider_failed", message="the render failed")
    with ctx.store.begin() as conn:
        (delivery,) = deliveries_store.deliveries_for_job(conn, job.id)
    assert delivery.status == deliveries_store.PENDING
    return delivery.id


def delivery_row(ctx: Context, delivery_id: str) -> dict[str, Any]:
    with ctx.store.begin() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).one()
    return dict(row._mapping)


def forget_in_database(ctx: Context, delivery_id: str, before: dict[str, Any]) -> None:
    """Put the delivery back as the database held it in ``before``, as if the worker had
    died after the receiver's 2xx but before its commit (Redis keeps what it was told)."""
    with ctx.store.begin() as conn:
        conn.execute(
            delivery_attempts.delete().where(delivery_attempts.c.delivery_id == delivery_id)
        )
        conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(**before))


# --- retries -------------------------------------------------------------------------


def test_the_default_schedule_is_three_quick_attempts_then_a_tail_longer_than_a_day() -> None:
    # The product page's 0 s, 5 s, 30 s, then enough retries that a receiver down for a
    # whole day still gets its events (a 40 s outage lost webhooks with 0s,5s,30s alone).
    schedule = Settings.model_fields["webhook_retry_schedule"].default_factory()  # type: ignore[misc,call-arg]

    assert schedule[:3] == [0.0, 5.0, 30.0]
    assert sum(schedule) > 24 * 3600
    assert schedule == sorted(schedule), "the waits only grow"
    assert max(schedule) <= 24 * 3600 and len(schedule) <= 20, "within the setting's own limits"


def test_a_receiver_back_from_an_outage_gets_its_waiting_retries_at_once(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given retries an hour apart, and a receiver that is down for two jobs' first attempts
    with_settings(ctx, webhook_retry_schedule=[0.0, 3600.0])
    app, url = receiver
    app.status = "503 Service Unavailable"
    waiting = [submit(api, auth, webhook_url=f"{url}/hooks")["id"] for _ in range(2)]
    elsewhere = submit(api, auth, webhook_url=f"{url}/other")["id"]
    for job_id in [*waiting, elsewhere]:
        assert first_attempt(api, auth, job_id)["status"] == "pending"  # next try in 1 h

    # When the receiver is back and a new job's webhook to the same URL gets a 2xx
    app.status = "200 OK"
    fresh = submit(api, auth, webhook_url=f"{url}/hooks")["id"]
    assert settled(api, auth, fresh)["status"] == "delivered"

    # Then the deliveries waiting for that destination are sent within seconds, not in an
    # hour; another destination of the account keeps its slot
    for job_id in waiting:
        delivered = settled(api, auth, job_id)
        assert delivered["status"] == "delivered"
        assert len(delivered["attempts"]) == 2
    assert deliveries_of(api, auth, elsewhere)[0]["status"] == "pending"


def test_a_receiver_back_from_an_outage_is_found_by_a_probe_with_no_new_traffic(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given retries an hour apart, and a receiver down for three jobs' first attempts
    probing = with_settings(ctx, webhook_retry_schedule=[0.0, 3600.0])
    app, url = receiver
    app.status = "503 Service Unavailable"
    waiting = [submit(api, auth, webhook_url=f"{url}/hooks")["id"] for _ in range(3)]
    for job_id in waiting:
        assert first_attempt(api, auth, job_id)["status"] == "pending"  # next try in 1 h

    # When a probe finds it still down, nothing changes but the log
    assert probe_waiting_destinations(probing) == 1
    probed = wait_until(
        lambda: next(
            (d for j in waiting for d in deliveries_of(api, auth, j) if len(d["attempts"]) == 2),
            None,
        )
    )
    assert probed["status"] == "pending"
    with ctx.store.begin() as conn:
        row = deliveries_store.get_delivery(conn, probed["id"])
    assert row is not None and row.round_attempts == 1, "the probe used no slot"
    assert row.next_attempt_at is not None and row.next_attempt_at > ctx.now() + timedelta(
        minutes=50
    )
    assert probe_waiting_destinations(probing) == 0, "at most one probe an interval"

    # When it is back, and no new job sends it anything, the next probe finds it
    app.status = "200 OK"
    ctx.redis.delete(redis_keys.destination_probe())  # the interval has passed
    assert probe_waiting_destinations(probing) == 1

    # Then every waiting webhook arrives within seconds, not in an hour
    for job_id in waiting:
        assert settled(api, auth, job_id)["status"] == "delivered"


def test_account_recover_resends_failed_deliveries_to_jobs_own_urls_only_of_this_account(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a job whose own webhook_url failed every attempt, and another account's likewise
    with_settings(ctx, webhook_retry_schedule=[0.0, 0.1])
    app, url = receiver
    app.status = "500 Internal Server Error"
    since = datetime.now().astimezone().isoformat()
    mine = settled(api, auth, submit(api, auth, webhook_url=f"{url}/mine")["id"])
    other_auth = {"Authorization": f"Bearer {create_account(ctx, 'other@example.com').api_key}"}
    theirs = settled(api, other_auth, submit(api, other_auth, webhook_url=f"{url}/theirs")["id"])
    assert mine["status"] == theirs["status"] == "failed"

    # When the receiver is back and the account recovers its failed deliveries
    app.status = "200 OK"
    result = api.simulate_post("/v1/deliveries/recover", json={"since": since}, headers=auth)

    # Then its delivery is sent again with the same webhook-id, and the other account's is not
    assert result.status_code == 202, result.text
    assert result.json["delivery_ids"] == [mine["id"]]
    assert result.json["status"] == "failed"
    recovered = wait_until(
        lambda: (d := read_delivery(api, auth, mine["id"]))["status"] == "delivered" and d
    )
    assert len(recovered["attempts"]) == 3
    assert read_delivery(api, other_auth, theirs["id"])["status"] == "failed"
    assert app.requests[-1].headers["webhook-id"] == mine["id"]


def test_account_recover_of_pending_deliveries_sends_them_now(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    with_settings(ctx, webhook_retry_schedule=[0.0, 3600.0])
    app, url = receiver
    app.status = "503 Service Unavailable"
    since = datetime.now().astimezone().isoformat()
    job_id = submit(api, auth, webhook_url=f"{url}/later")["id"]
    waiting = first_attempt(api, auth, job_id)
    assert waiting["status"] == "pending"

    app.status = "200 OK"
    result = api.simulate_post(
        "/v1/deliveries/recover", json={"since": since, "status": "pending"}, headers=auth
    )

    assert result.status_code == 202, result.text
    assert result.json["delivery_ids"] == [waiting["id"]]
    assert settled(api, auth, job_id)["status"] == "delivered"


def test_account_recover_names_a_bad_status(api: testing.TestClient, auth: dict[str, str]) -> None:
    result = api.simulate_post(
        "/v1/deliveries/recover",
        json={"since": "2026-01-01T00:00:00Z", "status": "delivered"},
        headers=auth,
    )
    assert result.status_code == 422
    assert [e["field"] for e in result.json["errors"]] == ["status"]


def test_a_receiver_that_is_down_then_up_gets_the_webhook_on_a_retry(
    ctx: Context, api: testing.TestClient, auth: dict[str, str]
) -> None:
    # Given a webhook URL on a port where nothing listens yet, retried 0.4 s after a failure
    with_settings(ctx, webhook_retry_schedule=[0.0, 0.4, 0.4])
    port = bundled_redis.free_port()
    app = WebhookReceiver()
    job_id = submit(api, auth, webhook_url=f"http://127.0.0.1:{port}/hooks")["id"]

    # When the first attempt has found nobody there, and then the receiver comes up
    down = first_attempt(api, auth, job_id)
    assert "ConnectError" in down["attempts"][0]["error"]
    with serve_wsgi(app, port=port):
        delivery = settled(api, auth, job_id)

    # Then the retry delivered it: one failed attempt, then 200
    assert delivery["status"] == "delivered"
    assert statuses(delivery) == [None, 200]
    # ...under the webhook-id the log showed for the failed attempt too
    (hook,) = app.requests
    assert hook.headers["webhook-id"] == down["id"] == delivery["id"]


def test_a_receiver_slower_than_the_timeout_is_retried(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a 0.3 s webhook timeout and a receiver whose first answer takes 1 s
    with_settings(ctx, webhook_timeout_seconds=0.3)
    app, url = receiver
    app.reply(Reply(delay=1.0))

    # When a job ends
    delivery = settled(api, auth, submit(api, auth, webhook_url=url)["id"])

    # Then the first attempt is logged as a timeout after about 0.3 s, and the retry delivered
    slow, retried = delivery["attempts"]
    assert slow["response_status"] is None and "Timeout" in slow["error"]
    assert 300 <= slow["latency_ms"] < 1000
    assert retried["response_status"] == 200
    assert delivery["status"] == "delivered"


def test_500_then_200_is_delivered_on_the_second_attempt(
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
    ctx: Context,
    account: NewAccount,
) -> None:
    # Given an account allowed private targets (so its log shows what its loopback receiver
    # says), and a receiver that fails once with an explanation, then accepts
    set_private_webhooks(ctx, account.account.email, True)
    app, url = receiver
    app.reply(FAILING)

    # When a job ends
    delivery = settled(api, auth, submit(api, auth, webhook_url=url)["id"])

    # Then the log shows 500 (with the receiver's words) then 200
    assert delivery["status"] == "delivered" and delivery["attempt_count"] == 2
    assert statuses(delivery) == [500, 200]
    assert delivery["attempts"][0]["response_body"] == "database is down"
    assert delivery["attempts"][0]["error"] == "receiver answered HTTP 500"
    # ...and both requests carried the same webhook-id, the delivery's id
    first, second = app.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery["id"]


def test_410_gone_stops_retrying_and_disables_the_endpoint_until_it_is_re_enabled(
    api: testing.TestClient, auth: dict[str, str], receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given an endpoint whose receiver answers 410 Gone
    app, url = receiver
    endpoint = create_endpoint(api, auth, url)
    app.reply(Reply("410 Gone"))

    # When a job ends, the delivery fails after that one attempt
    delivery = settled(api, auth, submit(api, auth)["id"])
    assert delivery["status"] == "failed" and statuses(delivery) == [410]
    assert len(app.requests) == 1

    # ...and the endpoint is disabled, saying why
    gone = read_endpoint(api, auth, endpoint["id"])
    assert gone["enabled"] is False and "410" in gone["disabled_reason"]

    # And a later event is not sent to it
    later = submit(api, auth)["id"]
    wait_for_status(api, auth, later, "completed")
    assert deliveries_of(api, auth, later) == []

    # When the account turns it back on, the reason is cleared and events flow again
    patch = f"/v1/webhook-endpoints/{endpoint['id']}"
    back = api.simulate_patch(patch, json={"enabled": True}, headers=auth)
    assert back.status_code == 200, back.text
    assert back.json["enabled"] is True and back.json["disabled_reason"] is None
    assert settled(api, auth, submit(api, auth)["id"])["status"] == "delivered"
    assert len(app.requests) == 2


def test_a_redirect_counts_as_a_failure_and_is_never_followed(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a receiver that always redirects to a second receiver
    app, url = receiver
    elsewhere = WebhookReceiver()
    with serve_wsgi(elsewhere) as elsewhere_url:
        moved = Reply("301 Moved Permanently", headers=[("Location", f"{elsewhere_url}/new")])
        schedule = ctx.settings.webhook_retry_schedule
        app.reply(*[moved] * len(schedule))

        # When a job ends
        delivery = settled(api, auth, submit(api, auth, webhook_url=url)["id"])

    # Then every attempt got the 301, on the retry schedule, and the delivery failed
    assert delivery["status"] == "failed"
    assert statuses(delivery) == [301] * len(schedule)
    assert "redirects are not followed" in delivery["attempts"][0]["error"]
    assert all(gap >= delay for gap, delay in zip(gaps(delivery), schedule[1:], strict=True))
    # ...and the redirect target never heard of it
    assert elsewhere.requests == []


def test_retry_after_on_429_lengthens_the_wait(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a schedule that would retry after 0.1 s, and a receiver asking for 1 s
    with_settings(ctx, webhook_retry_schedule=[0.0, 0.1, 3.0])
    app, url = receiver
    app.reply(Reply("429 Too Many Requests", headers=[("Retry-After", "1")]))

    # When a job ends, the retry is scheduled 1 s after the first attempt
    job_id = submit(api, auth, webhook_url=url)["id"]
    waiting = first_attempt(api, auth, job_id)
    (limited,) = waiting["attempts"]
    assert limited["response_status"] == 429
    wait = at(waiting["next_attempt_at"]) - at(limited["attempted_at"])
    assert wait == timedelta(seconds=1)

    # Then the second attempt came no sooner, and delivered
    delivery = settled(api, auth, job_id)
    assert statuses(delivery) == [429, 200]
    assert gaps(delivery)[0] >= 1.0


def test_retry_after_is_capped_at_the_schedules_longest_delay(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a schedule whose longest delay is 3 s, and a receiver asking for an hour
    with_settings(ctx, webhook_retry_schedule=[0.0, 0.1, 3.0])
    app, url = receiver
    app.reply(Reply("503 Service Unavailable", headers=[("Retry-After", "3600")]))

    # When a job ends
    waiting = first_attempt(api, auth, submit(api, auth, webhook_url=url)["id"])

    # Then the next attempt is due 3 s after the first, not an hour
    (unavailable,) = waiting["attempts"]
    assert unavailable["response_status"] == 503
    wait = at(waiting["next_attempt_at"]) - at(unavailable["attempted_at"])
    assert wait == timedelta(seconds=3)


def test_when_every_attempt_fails_the_delivery_fails_and_the_result_stays_readable(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a receiver that always fails
    app, url = receiver
    app.status = "500 Internal Server Error"

    # When a job ends
    job_id = submit(api, auth, webhook_url=url)["id"]
    delivery = settled(api, auth, job_id)

    # Then the delivery failed after exactly one attempt per entry of the schedule
    attempts = len(ctx.settings.webhook_retry_schedule)
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
    assert delivery["attempt_count"] == attempts and statuses(delivery) == [500] * attempts
    assert len(app.requests) == attempts

    # And polling still gives the result
    job = api.simulate_get(f"/v1/video/generations/{job_id}", headers=auth).json
    assert job["status"] == "completed" and "/v1/outputs/" in job["output_url"]


# --- dedup ---------------------------------------------------------------------------


@pytest.fixture
def throwaway_redis(tmp_path: Any) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test's own, which it may stop."""
    process, url = bundled_redis.start(tmp_path / "redis")
    yield process, url
    if process.poll() is None:
        process.terminate()
        process.wait(10)


def test_with_redis_stopped_a_delivery_goes_ahead_once_and_is_flagged(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
    throwaway_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    # Given a process whose Redis (locks, dedup, broker) is a server of its own
    process, redis_url = throwaway_redis
    app, url = receiver
    own = build_context(ctx.settings.model_copy(update={"redis_url": redis_url}))
    try:
        # ...and an ended job with a pending delivery
        delivery_id = ended_job_with_pending_delivery(own, account, url)

        # When that Redis stops and the delivery message is processed
        process.terminate()
        process.wait(10)
        deliver(own, delivery_id)
    finally:
        own.close()

    # Then exactly one POST reached the receiver and the delivery is delivered
    assert len(app.requests) == 1
    delivery = read_delivery(api, auth, delivery_id)
    assert delivery["status"] == "delivered" and statuses(delivery) == [200]
    # ...flagged as sent without the dedup check (fail-open)
    assert delivery["attempts"][0]["dedup_unavailable"] is True


def test_a_delivery_message_processed_twice_posts_once(
    ctx: Context,
    lossy: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given an ended job whose delivery nobody has processed yet
    app, url = receiver
    delivery_id = ended_job_with_pending_delivery(lossy, account, url)

    # When its message is processed twice (Dramatiq delivers at least once)
    deliver(ctx, delivery_id)
    deliver(ctx, delivery_id)

    # Then the receiver got one POST and the log one attempt
    assert len(app.requests) == 1
    delivery = read_delivery(api, auth, delivery_id)
    assert delivery["status"] == "delivered" and statuses(delivery) == [200]


def test_a_delivery_message_processed_by_two_workers_at_once_posts_once(
    lossy: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given an ended job's pending delivery, and a receiver slow enough for the two
    # workers below to overlap
    app, url = receiver
    delivery_id = ended_job_with_pending_delivery(lossy, account, url)
    app.reply(Reply(delay=0.3))

    # When two workers process its message at the same moment
    start = threading.Barrier(2)

    def work() -> None:
        start.wait()
        deliver(lossy, delivery_id)

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(work) for _ in range(2)]:
            done.result()

    # Then the receiver got one POST and the log one attempt
    assert len(app.requests) == 1
    delivery = read_delivery(api, auth, delivery_id)
    assert delivery["status"] == "delivered" and statuses(delivery) == [200]


def test_a_rerun_after_a_crash_between_the_2xx_and_the_commit_sends_nothing(
    ctx: Context,
    lossy: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a delivery that reached the receiver, but whose worker died before the database
    # recorded it: the row is pending as before, Redis remembers the 2xx
    app, url = receiver
    delivery_id = ended_job_with_pending_delivery(lossy, account, url)
    before = delivery_row(ctx, delivery_id)
    deliver(ctx, delivery_id)
    assert len(app.requests) == 1
    forget_in_database(ctx, delivery_id, before)

    # When the message is processed again
    deliver(ctx, delivery_id)

    # Then nothing more is sent, and the delivery is recorded as delivered
    assert len(app.requests) == 1
    delivery = read_delivery(api, auth, delivery_id)
    assert delivery["status"] == "delivered" and statuses(delivery) == [None]
    assert "not sent again" in delivery["attempts"][0]["error"]


def test_an_explicit_redeliver_after_a_success_sends_again_with_the_same_webhook_id(
    api: testing.TestClient, auth: dict[str, str], receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given a delivered webhook (so Redis remembers its success)
    app, url = receiver
    delivery = settled(api, auth, submit(api, auth, webhook_url=url)["id"])
    assert delivery["status"] == "delivered"

    # When the user asks for it again
    result = api.simulate_post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=auth)
    assert result.status_code == 202, result.text

    # Then it is sent again, under the same webhook-id
    first, again = app.wait_for(2)
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == delivery["id"]
    assert again.body == first.body

    # ...and the log shows both successes
    def redelivered() -> dict | None:
        found = read_delivery(api, auth, delivery["id"])
        return found if found["status"] == "delivered" and found["attempt_count"] == 2 else None

    assert statuses(wait_until(redelivered)) == [200, 200]


# --- endpoints -----------------------------------------------------------------------


def test_an_endpoints_own_retry_schedule_replaces_the_servers(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a server schedule of three attempts, and an endpoint that asks for two
    assert len(ctx.settings.webhook_retry_schedule) == 3
    app, url = receiver
    app.status = "500 Internal Server Error"
    create_endpoint(api, auth, url, retry_schedule=["0s", "0.1s"])

    # When a job ends
    delivery = settled(api, auth, submit(api, auth)["id"])

    # Then its delivery failed after two attempts
    assert delivery["status"] == "failed" and statuses(delivery) == [500, 500]
    assert len(app.requests) == 2


def test_an_endpoints_own_timeout_replaces_the_servers(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given a receiver that answers after 1 s: in time for the server's 2 s timeout,
    # too late for the endpoint's 0.3 s
    assert ctx.settings.webhook_timeout_seconds == 2.0
    app, url = receiver
    app.reply(Reply(delay=1.0))
    create_endpoint(api, auth, url, retry_schedule=["0s"], timeout_seconds=0.3)

    # When a job ends
    delivery = settled(api, auth, submit(api, auth)["id"])

    # Then the one attempt timed out after about 0.3 s
    (attempt,) = delivery["attempts"]
    assert delivery["status"] == "failed"
    assert "Timeout" in attempt["error"] and 300 <= attempt["latency_ms"] < 1000


def test_an_endpoint_failing_for_too_long_is_disabled_with_a_reason(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given endpoints are disabled after 0.2 s of nothing but failures (the schedule's
    # attempts span 0.3 s), and a receiver that always fails
    with_settings(ctx, webhook_endpoint_disable_after_seconds=0.2)
    app, url = receiver
    app.status = "500 Internal Server Error"
    endpoint = create_endpoint(api, auth, url)

    # When a job ends and its delivery fails
    assert settled(api, auth, submit(api, auth)["id"])["status"] == "failed"

    # Then the endpoint is disabled, saying since when it has been failing
    disabled = read_endpoint(api, auth, endpoint["id"])
    assert disabled["enabled"] is False and disabled["disabled_at"] is not None
    assert "failed since" in disabled["disabled_reason"]


def test_a_success_ends_an_endpoints_failing_streak(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given endpoints are disabled after 0.5 s of nothing but failures, and an endpoint
    # retried once, 0.2 s after a failure
    with_settings(ctx, webhook_endpoint_disable_after_seconds=0.5)
    app, url = receiver
    endpoint = create_endpoint(api, auth, url, retry_schedule=["0s", "0.2s"])

    # When a first delivery fails once and then succeeds
    app.reply(FAILING)
    assert statuses(settled(api, auth, submit(api, auth)["id"])) == [500, 200]

    # Then the endpoint has no failing streak
    assert read_endpoint(api, auth, endpoint["id"])["failing_since"] is None

    # And when a later delivery fails twice (its last attempt well over 0.5 s after the
    # first failure of all), a new streak starts with it and the endpoint stays enabled
    app.reply(FAILING, FAILING)
    later = settled(api, auth, submit(api, auth)["id"])
    assert statuses(later) == [500, 500]
    current = read_endpoint(api, auth, endpoint["id"])
    assert current["enabled"] is True
    assert at(current["failing_since"]) == at(later["attempts"][0]["attempted_at"])


def test_a_delivery_written_before_payloads_were_frozen_sends_the_jobs_result(
    ctx: Context, lossy: Context, account: NewAccount, receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given a pending delivery as migration 0002 leaves an older one: no frozen payload
    app, url = receiver
    delivery_id = ended_job_with_pending_delivery(lossy, account, url)
    with ctx.store.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(payload=None))

    # When it is delivered
    deliver(lossy, delivery_id)

    # Then the body is rendered from the job, and signed like any other
    (hook,) = app.requests
    body = json.loads(hook.body)
    assert body["event"] == "video.generation.failed" and body["status"] == "failed"
    assert body["id"] == delivery_row(ctx, delivery_id)["job_id"]
    assert Webhook(account.signing_secret).verify(hook.body, hook.headers)
