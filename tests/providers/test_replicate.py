"""The Replicate adapter against the simulator's Replicate dialect, over real HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from backend.errors import (
    ProviderCapacity,
    ProviderOutcomeUnknown,
    ProviderQuotaExhausted,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTransient,
)
from backend.jobs.states import JobPhase
from backend.providers.base import CallbackRejected, RenderRequest, RenderState, phase_from_progress
from backend.simulator import credentials
from tests.conftest import wait_until
from tests.providers.conftest import RENDER_SECONDS, adapter_for, image_input
from tests.support.faults import CONTROL_HEADERS, inject_fault, renders

pytestmark = pytest.mark.timeout(30)

#: Longer than the provider client's 1 s timeout (tests/providers/conftest.py).
HANG_SECONDS = 1.3
AUTH = {"Authorization": f"Bearer {credentials.REPLICATE_API_TOKEN}"}
SEEDANCE = "bytedance/seedance-1-pro"


def request(model: str = "wan-video/wan-2.5-t2v", **changes: object) -> RenderRequest:
    values: dict[str, object] = {
        "job_id": "vgen_replicate_1",
        "model": model,
        "prompt": "A sunlit loft, slow dolly in",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        **changes,
    }
    return RenderRequest(**values)  # type: ignore[arg-type]


def prediction(sim: str, prediction_id: str) -> dict[str, Any]:
    """The raw prediction object, as Replicate would show it."""
    found: dict[str, Any] = httpx.get(
        f"{sim}/replicate/v1/predictions/{prediction_id}", headers=AUTH
    ).json()
    return found


def signed(body: bytes, *, at: datetime | None = None, secret: str = "") -> dict[str, str]:
    """Standard Webhooks headers for ``body``, as Replicate would send them."""
    when = at or datetime.now(UTC)
    signer = Webhook(secret or credentials.REPLICATE_WEBHOOK_SECRET)
    return {
        "webhook-id": "msg_test",
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signer.sign("msg_test", when, body.decode()),
    }


@pytest.fixture
def replicate(sim: str, provider_client: httpx.Client):  # type: ignore[no-untyped-def]
    return adapter_for("replicate", sim, provider_client)


# -- text and image to video --------------------------------------------------------------


def test_a_prediction_goes_from_starting_through_processing_to_succeeded(replicate, sim) -> None:
    handle = replicate.submit(request())

    first = replicate.poll(handle)
    assert (first.state, first.phase) == (RenderState.QUEUED, JobPhase.QUEUED)
    running = wait_until(lambda: (s := replicate.poll(handle)).state == RenderState.RUNNING and s)
    assert running.progress is not None and 0 <= running.progress < 100
    assert running.phase == phase_from_progress(running.progress)
    done = wait_until(lambda: (s := replicate.poll(handle)).state == RenderState.SUCCEEDED and s)
    assert (done.phase, done.progress) == (JobPhase.FINISHING, 100.0)
    video = httpx.get(done.output_url)
    assert (video.status_code, video.headers["content-type"]) == (200, "video/mp4")
    assert len(video.content) > 1000


def test_progress_is_read_from_the_tqdm_lines_in_the_logs(replicate, sim) -> None:
    handle = replicate.submit(request())

    raw = wait_until(lambda: (p := prediction(sim, handle))["status"] == "processing" and p)
    last_percent = int(raw["logs"].splitlines()[-1].split("%")[0])
    assert replicate.poll(handle).progress >= last_percent


def test_wan_text_to_video_gets_a_pixel_size_and_an_integer_duration(replicate, sim) -> None:
    handle = replicate.submit(request(duration_seconds=10, aspect_ratio="9:16"))

    sent = prediction(sim, handle)["input"]
    assert sent == {"prompt": "A sunlit loft, slow dolly in", "duration": 10, "size": "720*1280"}
    [render] = renders(sim)
    assert (render["model"], render["aspect_ratio"]) == ("wan-video/wan-2.5-t2v", "9:16")


def test_wan_with_an_image_goes_to_its_image_model_as_a_data_url(replicate, sim) -> None:
    handle = replicate.submit(request(image=image_input()))

    [render] = renders(sim)
    assert render["model"] == "wan-video/wan-2.5-i2v"
    assert str(render["image"]).startswith("data-url:")
    assert prediction(sim, handle)["input"]["image"].startswith("data:image/png;base64,")


def test_wan_refuses_a_last_frame_before_sending_anything(replicate, sim) -> None:
    with pytest.raises(ProviderRejected) as caught:
        replicate.submit(request(image=image_input(), end_image=image_input()))

    assert caught.value.code == "invalid_request"
    assert renders(sim) == []


def test_seedance_gets_both_frames_as_genhooks_signed_links(replicate, sim) -> None:
    first, last = "https://genhook.example/i/1?sig=a", "https://genhook.example/i/2?sig=b"

    handle = replicate.submit(
        request(SEEDANCE, image=image_input(url=first), end_image=image_input(url=last))
    )

    [render] = renders(sim)
    assert (render["image"], render["end_image"]) == (f"url:{first}", f"url:{last}")
    sent = prediction(sim, handle)["input"]
    assert (sent["image"], sent["last_frame_image"], sent["duration"]) == (first, last, 5)


def test_seedance_text_to_video_sends_the_ratio_as_is(replicate, sim) -> None:
    handle = replicate.submit(request(SEEDANCE, aspect_ratio="1:1", duration_seconds=10))

    sent = prediction(sim, handle)["input"]
    assert (sent["aspect_ratio"], sent["duration"]) == ("1:1", 10)


def test_a_pinned_version_is_created_through_the_versioned_endpoint(replicate, sim) -> None:
    handle = replicate.submit(request(f"{SEEDANCE}:a5fd5508"))

    raw = prediction(sim, handle)
    assert (raw["model"], raw["version"]) == (SEEDANCE, "a5fd5508")


# -- errors ---------------------------------------------------------------------------------

#: Each fault kind, the error it must come out as, and its genhook code.
ERRORS = [
    ("rate_limited", ProviderRateLimited, "rate_limited"),
    ("capacity", ProviderCapacity, "capacity"),
    ("quota", ProviderQuotaExhausted, "quota_exhausted"),
    ("auth", ProviderQuotaExhausted, "auth_failed"),
    ("server_error", ProviderTransient, "provider_error"),
    ("unavailable", ProviderTransient, "provider_error"),
    ("bad_request", ProviderRejected, "invalid_request"),
    ("content_policy", ProviderRejected, "content_policy"),
]


@pytest.mark.parametrize(("kind", "error", "code"), ERRORS)
def test_submit_errors_are_classified_from_replicate_problems(
    replicate, sim, kind: str, error: type[Exception], code: str
) -> None:
    inject_fault(sim, on="submit", kind=kind, dialect="replicate")

    with pytest.raises(error) as caught:
        replicate.submit(request())

    assert caught.value.code == code  # type: ignore[attr-defined]
    assert renders(sim) == []


def test_a_rate_limit_carries_retry_after(replicate, sim) -> None:
    inject_fault(sim, on="submit", kind="rate_limited", dialect="replicate", retry_after=7)

    with pytest.raises(ProviderRateLimited) as caught:
        replicate.submit(request())

    assert caught.value.retry_after_seconds == 7


def test_without_retry_after_the_wait_is_read_from_the_throttling_detail(replicate, sim) -> None:
    detail = "Request was throttled. Your rate limit resets in ~12s."
    inject_fault(
        sim, on="submit", status=429, code="throttled", message=detail, dialect="replicate"
    )

    with pytest.raises(ProviderRateLimited) as caught:
        replicate.submit(request())

    assert caught.value.retry_after_seconds == 12


def test_a_hung_submit_is_unknown_although_nothing_was_created(replicate, sim) -> None:
    inject_fault(sim, on="submit", kind="hang", dialect="replicate", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderOutcomeUnknown):
        replicate.submit(request())
    assert renders(sim) == []


def test_a_lost_answer_after_the_prediction_was_created_is_unknown(replicate, sim) -> None:
    inject_fault(
        sim, on="submit", kind="hang_after_create", dialect="replicate", hang_seconds=HANG_SECONDS
    )

    with pytest.raises(ProviderOutcomeUnknown):
        replicate.submit(request())
    assert len(renders(sim)) == 1
    assert replicate.supports_find_task is False  # no idempotency key to look it up by


@pytest.mark.parametrize(("kind", "error", "code"), ERRORS)
def test_poll_errors_are_classified_too(
    replicate, sim, kind: str, error: type[Exception], code: str
) -> None:
    handle = replicate.submit(request())
    inject_fault(sim, on="poll", kind=kind, dialect="replicate")

    with pytest.raises(error) as caught:
        replicate.poll(handle)

    assert caught.value.code == code  # type: ignore[attr-defined]
    assert replicate.poll(handle).state in (RenderState.QUEUED, RenderState.RUNNING)


def test_a_hung_poll_is_transient_not_unknown(replicate, sim) -> None:
    handle = replicate.submit(request())
    inject_fault(sim, on="poll", kind="hang", dialect="replicate", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderTransient) as caught:
        replicate.poll(handle)
    assert not isinstance(caught.value, ProviderOutcomeUnknown)


@pytest.mark.parametrize(
    ("kind", "code", "words"),
    [("content_policy", "content_policy", "(E005)"), (None, "provider_failed", "(E1000)")],
)
def test_a_prediction_that_fails_mid_way_keeps_replicates_error(
    replicate, sim, kind: str | None, code: str, words: str
) -> None:
    rule: dict[str, object] = {"on": "render", "dialect": "replicate", "at_phase": "rendering"}
    if kind:
        rule["kind"] = kind
    inject_fault(sim, **rule)
    handle = replicate.submit(request())

    failed = wait_until(lambda: (s := replicate.poll(handle)).state == RenderState.FAILED and s)
    assert failed.error_code == code
    assert words in failed.error_message


# -- cancel ---------------------------------------------------------------------------------


def test_cancel_stops_a_running_prediction(replicate, sim) -> None:
    handle = replicate.submit(request())

    assert replicate.supports_cancel is True
    assert replicate.cancel(handle) is True
    assert replicate.poll(handle).state == RenderState.CANCELED
    assert prediction(sim, handle)["status"] == "canceled"


def test_cancelling_an_unknown_prediction_is_rejected(replicate) -> None:
    with pytest.raises(ProviderRejected):
        replicate.cancel("no-such-prediction")


# -- webhooks -------------------------------------------------------------------------------


def test_webhooks_come_for_start_and_completed_and_verify(replicate, sim, receiver) -> None:
    app, url = receiver
    handle = replicate.submit(request(callback_url=f"{url}/replicate-webhook"))

    try:
        wait_until(lambda: len(app.requests) >= 2, timeout=5 + RENDER_SECONDS)
    except TimeoutError:
        raise AssertionError(
            httpx.get(f"{sim}/_sim/callbacks", headers=CONTROL_HEADERS).json()
        ) from None
    wait_until(lambda: prediction(sim, handle)["status"] == "succeeded")
    assert [json.loads(r.body)["status"] for r in app.requests] == ["processing", "succeeded"]
    for received in app.requests:
        hint = replicate.callback(received.headers, received.body)
        assert (hint.task_id, hint.verified) == (handle, True)


def test_without_an_events_filter_only_completion_is_sent(sim, receiver) -> None:
    app, url = receiver
    body = {"input": {"prompt": "x"}, "webhook": f"{url}/hook"}
    created = httpx.post(
        f"{sim}/replicate/v1/models/{SEEDANCE}/predictions", json=body, headers=AUTH
    )

    assert created.status_code == 201
    [received] = app.wait_for(1, timeout=5)
    assert json.loads(received.body)["status"] == "succeeded"


def test_the_secret_is_fetched_from_replicate_when_not_configured(sim, provider_client) -> None:
    replicate = adapter_for("replicate", sim, provider_client, replicate_webhook_secret="")
    body = json.dumps({"id": "p1", "status": "succeeded"}).encode()

    assert replicate.callback(signed(body), body).task_id == "p1"


def test_a_signed_body_for_another_prediction_names_that_prediction(replicate) -> None:
    body = json.dumps({"id": "someone-elses", "status": "succeeded"}).encode()

    assert replicate.callback(signed(body), body).task_id == "someone-elses"


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda b: (signed(b, secret="whsec_" + "d3Jvbmc=" * 4), b), id="wrong-key"),
        pytest.param(lambda b: (signed(b), b.replace(b"failed", b"succeeded")), id="tampered"),
        pytest.param(
            lambda b: (signed(b, at=datetime.now(UTC) - timedelta(minutes=6)), b), id="stale"
        ),
        pytest.param(lambda b: ({}, b), id="unsigned"),
        pytest.param(lambda b: ({**signed(b), "webhook-signature": "v1"}, b), id="malformed"),
    ],
)
def test_a_forged_stale_or_unsigned_webhook_is_rejected(replicate, forge) -> None:
    headers, body = forge(json.dumps({"id": "p1", "status": "failed"}).encode())

    with pytest.raises(CallbackRejected):
        replicate.callback(headers, body)


# -- health and the dialect's own checks ----------------------------------------------------


def test_the_health_probe_reads_the_account(replicate, sim, provider_client) -> None:
    replicate.health()

    broken = adapter_for("replicate", sim, provider_client, replicate_api_token="r8_wrong")
    with pytest.raises(ProviderQuotaExhausted) as caught:
        broken.health()
    assert caught.value.code == "auth_failed"


def test_a_missing_token_gets_replicates_401_problem(sim) -> None:
    response = httpx.get(f"{sim}/replicate/v1/predictions/anything")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    }


def test_a_string_duration_is_a_422_naming_the_field(sim) -> None:
    body = {"input": {"prompt": "x", "duration": "5"}}
    response = httpx.post(
        f"{sim}/replicate/v1/models/wan-video/wan-2.5-t2v/predictions", json=body, headers=AUTH
    )

    assert response.status_code == 422
    problem = response.json()
    assert problem["title"] == "Input validation failed"
    [field] = problem["invalid_fields"]
    assert (field["type"], field["field"]) == ("invalid_type", "input.duration")


def test_an_unknown_version_is_refused_as_replicate_does(sim) -> None:
    body = {"version": "nobody/nothing:0123", "input": {"prompt": "x"}}
    response = httpx.post(f"{sim}/replicate/v1/predictions", json=body, headers=AUTH)

    assert response.status_code == 422
    assert response.json()["title"] == "Invalid version or not permitted"
