"""The BytePlus (Seedance) adapter against the simulator's BytePlus dialect, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from backend.errors import (
    ProviderCapacity,
    ProviderOutcomeUnknown,
    ProviderQuotaExhausted,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTransient,
)
from backend.jobs.states import JobPhase
from backend.providers.base import CallbackRejected, RenderRequest, RenderState
from backend.simulator import credentials
from backend.simulator.app import create_app as create_simulator
from tests.conftest import wait_until
from tests.providers.conftest import RENDER_SECONDS, adapter_for, image_input
from tests.support.faults import CONTROL_TOKEN, inject_fault, renders, stats
from tests.support.wsgi_server import serve_wsgi

pytestmark = pytest.mark.timeout(30)

#: Longer than the provider client's 1 s timeout (tests/providers/conftest.py).
HANG_SECONDS = 1.3
#: A render this long stays queued for its first 0.4 s, long enough to cancel it.
SLOW_RENDER_SECONDS = 4.0
MODEL = "seedance-1-0-pro-250528"
AUTH = {"Authorization": f"Bearer {credentials.BYTEPLUS_API_KEY}"}


def request(job_id: str = "vgen_seedance_1", **changes: object) -> RenderRequest:
    values: dict[str, object] = {
        "job_id": job_id,
        "model": MODEL,
        "prompt": "A ceramic mug on a walnut desk, slow orbit",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        **changes,
    }
    return RenderRequest(**values)  # type: ignore[arg-type]


def tasks_url(sim: str) -> str:
    return f"{sim}/byteplus/api/v3/contents/generations/tasks"


def final(adapter, handle: str, state: RenderState):  # type: ignore[no-untyped-def]
    return wait_until(lambda: (s := adapter.poll(handle)).state == state and s, timeout=5)


@pytest.fixture
def byteplus(sim: str, provider_client: httpx.Client):  # type: ignore[no-untyped-def]
    return adapter_for("byteplus", sim, provider_client)


@pytest.fixture
def slow_sim() -> Iterator[str]:
    simulator = create_simulator(render_seconds=SLOW_RENDER_SECONDS, control_token=CONTROL_TOKEN)
    with serve_wsgi(simulator) as url:
        yield url


# -- text and image to video --------------------------------------------------------------


def test_text_to_video_goes_from_queued_through_running_to_succeeded(byteplus, sim) -> None:
    handle = byteplus.submit(request())

    assert handle.startswith("cgt-")
    first = byteplus.poll(handle)
    assert (first.state, first.phase) == (RenderState.QUEUED, JobPhase.QUEUED)
    running = wait_until(
        lambda: (s := byteplus.poll(handle)).state == RenderState.RUNNING and s, timeout=5
    )
    assert (running.phase, running.progress) == (JobPhase.RENDERING, None)
    done = final(byteplus, handle, RenderState.SUCCEEDED)
    assert done.phase == JobPhase.FINISHING
    video = httpx.get(done.output_url)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert len(video.content) > 1000


def test_ratio_and_duration_arrive_as_top_level_fields(byteplus, sim) -> None:
    byteplus.submit(request(duration_seconds=10, aspect_ratio="9:16"))

    [render] = renders(sim)
    assert render["dialect"] == "byteplus"
    assert render["model"] == MODEL
    assert render["prompt"] == "A ceramic mug on a walnut desk, slow orbit"
    assert (render["duration_seconds"], render["aspect_ratio"]) == (10, "9:16")
    assert render["image"] is None


def test_image_to_video_sends_both_frames_as_data_urls_without_a_public_address(
    byteplus, sim
) -> None:
    handle = byteplus.submit(request(image=image_input(), end_image=image_input(width=400)))

    [render] = renders(sim)
    assert str(render["image"]).startswith("data-url:")
    assert str(render["end_image"]).startswith("data-url:")
    assert byteplus.poll(handle).state in (RenderState.QUEUED, RenderState.RUNNING)


def test_image_to_video_sends_the_signed_link_when_genhook_has_one(byteplus, sim) -> None:
    link = "https://genhook.example/v1/image-inputs/img_1?expires=1&signature=abc"

    byteplus.submit(request(image=image_input(url=link)))

    [render] = renders(sim)
    assert render["image"] == f"url:{link}"
    assert render["end_image"] is None


# -- errors at submit -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("rate_limited", ProviderRateLimited, "rate_limited"),
        ("capacity", ProviderCapacity, "capacity"),
        ("quota", ProviderQuotaExhausted, "quota_exhausted"),
        ("auth", ProviderQuotaExhausted, "auth_failed"),
        ("server_error", ProviderTransient, "provider_error"),
        ("unavailable", ProviderCapacity, "provider_error"),
        ("bad_request", ProviderRejected, "invalid_request"),
        ("content_policy", ProviderRejected, "content_policy"),
    ],
)
def test_submit_errors_are_classified_from_ark_error_codes(
    byteplus, sim, kind: str, error: type[Exception], code: str
) -> None:
    inject_fault(sim, on="submit", kind=kind, dialect="byteplus")

    with pytest.raises(error) as caught:
        byteplus.submit(request())

    assert caught.value.code == code  # type: ignore[attr-defined]
    assert renders(sim) == []


@pytest.mark.parametrize(
    ("status", "ark_code", "error", "code"),
    [
        (429, "QuotaExceeded", ProviderQuotaExhausted, "quota_exhausted"),
        (429, "ModelAccountRpmRateLimitExceeded", ProviderRateLimited, "rate_limited"),
        (429, "ModelLoadingError", ProviderCapacity, "capacity"),
        (404, "ModelNotOpen", ProviderQuotaExhausted, "quota_exhausted"),
        (
            400,
            "InputImageSensitiveContentDetected.PrivacyInformation",
            ProviderRejected,
            "content_policy",
        ),
        (400, "MissingParameter", ProviderRejected, "invalid_request"),
        (502, "BadGateway", ProviderTransient, "provider_error"),
    ],
)
def test_the_ark_code_decides_over_the_http_status(
    byteplus, sim, status: int, ark_code: str, error: type[Exception], code: str
) -> None:
    inject_fault(sim, on="submit", status=status, code=ark_code, dialect="byteplus")

    with pytest.raises(error) as caught:
        byteplus.submit(request())

    assert caught.value.code == code  # type: ignore[attr-defined]
    assert ark_code in caught.value.message  # type: ignore[attr-defined]


def test_a_rate_limit_carries_retry_after(byteplus, sim) -> None:
    inject_fault(sim, on="submit", kind="rate_limited", dialect="byteplus", retry_after=7)

    with pytest.raises(ProviderRateLimited) as caught:
        byteplus.submit(request())

    assert caught.value.retry_after_seconds == 7
    assert "RateLimitExceeded.EndpointRPMExceeded" in caught.value.message


def test_a_hung_submit_is_unknown_and_creates_nothing(byteplus, sim) -> None:
    inject_fault(sim, on="submit", kind="hang", dialect="byteplus", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderOutcomeUnknown):
        byteplus.submit(request())
    assert renders(sim) == []


def test_a_lost_answer_after_the_task_was_created_is_unknown(byteplus, sim) -> None:
    inject_fault(
        sim, on="submit", kind="hang_after_create", dialect="byteplus", hang_seconds=HANG_SECONDS
    )

    with pytest.raises(ProviderOutcomeUnknown):
        byteplus.submit(request())
    assert len(renders(sim)) == 1
    assert byteplus.supports_find_task is False


# -- errors at poll and during the render -------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("rate_limited", ProviderRateLimited),
        ("capacity", ProviderCapacity),
        ("auth", ProviderQuotaExhausted),
        ("server_error", ProviderTransient),
    ],
)
def test_poll_errors_are_classified_too(byteplus, sim, kind: str, error: type[Exception]) -> None:
    handle = byteplus.submit(request())
    inject_fault(sim, on="poll", kind=kind, dialect="byteplus")

    with pytest.raises(error):
        byteplus.poll(handle)
    assert byteplus.poll(handle).state is not RenderState.FAILED


def test_a_hung_poll_is_transient_not_unknown(byteplus, sim) -> None:
    handle = byteplus.submit(request())
    inject_fault(sim, on="poll", kind="hang", dialect="byteplus", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderTransient):
        byteplus.poll(handle)


@pytest.mark.parametrize(
    ("rule", "code", "ark_code"),
    [
        ({"kind": "content_policy"}, "content_policy", "OutputVideoSensitiveContentDetected"),
        (
            {"code": "OutputVideoSensitiveContentDetected.PolicyViolation"},
            "content_policy",
            "OutputVideoSensitiveContentDetected.PolicyViolation",
        ),
        ({"kind": "internal"}, "provider_transient", "InternalServiceError"),
        ({"kind": "capacity"}, "capacity", "ServerOverloaded"),
        ({"code": "SomethingUnheardOf"}, "provider_failed", "SomethingUnheardOf"),
    ],
)
def test_a_render_that_dies_mid_way_is_failed_with_ark_error_code(
    byteplus, sim, rule: dict[str, object], code: str, ark_code: str
) -> None:
    inject_fault(sim, on="render", dialect="byteplus", at_phase="rendering", **rule)
    handle = byteplus.submit(request())

    failed = final(byteplus, handle, RenderState.FAILED)
    assert failed.error_code == code
    assert failed.error_message.startswith(f"{ark_code}: ")


def test_a_task_expired_in_the_queue_is_a_capacity_failure(byteplus, sim) -> None:
    inject_fault(sim, on="render", dialect="byteplus", at_phase="queued", code="expired")
    handle = byteplus.submit(request())

    task = httpx.get(f"{tasks_url(sim)}/{handle}", headers=AUTH).json()
    assert task["status"] == "expired"
    failed = byteplus.poll(handle)
    assert (failed.state, failed.error_code) == (RenderState.FAILED, "capacity")


# -- cancel ---------------------------------------------------------------------------------


def test_a_queued_task_is_cancelled(slow_sim, provider_client) -> None:
    byteplus = adapter_for("byteplus", slow_sim, provider_client)
    handle = byteplus.submit(request())

    assert byteplus.cancel(handle) is True

    status = byteplus.poll(handle)
    assert status.state is RenderState.CANCELED
    assert byteplus.cancel(handle) is True


def test_a_running_task_cannot_be_cancelled_and_carries_on(slow_sim, provider_client) -> None:
    byteplus = adapter_for("byteplus", slow_sim, provider_client)
    handle = byteplus.submit(request())
    wait_until(lambda: byteplus.poll(handle).state is RenderState.RUNNING, timeout=5)

    assert byteplus.cancel(handle) is False
    assert byteplus.poll(handle).state is RenderState.RUNNING


def test_cancel_leaves_a_finished_task_and_its_video_alone(byteplus, sim) -> None:
    handle = byteplus.submit(request())
    done = final(byteplus, handle, RenderState.SUCCEEDED)

    assert byteplus.cancel(handle) is False
    assert byteplus.poll(handle).output_url == done.output_url


def create_task(sim: str) -> str:
    body = {"model": MODEL, "content": [{"type": "text", "text": "x"}], "duration": 2}
    created = httpx.post(tasks_url(sim), headers=AUTH, json=body).json()
    return f"{tasks_url(sim)}/{created['id']}"


def test_ark_delete_refuses_a_running_task(slow_sim) -> None:
    url = create_task(slow_sim)
    wait_until(lambda: httpx.get(url, headers=AUTH).json()["status"] == "running", timeout=5)

    refused = httpx.delete(url, headers=AUTH)

    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "InvalidParameter")
    assert httpx.get(url, headers=AUTH).json()["status"] == "running"


def test_ark_delete_erases_a_finished_task_record(sim) -> None:
    url = create_task(sim)
    wait_until(lambda: httpx.get(url, headers=AUTH).json()["status"] == "succeeded", timeout=5)

    assert httpx.delete(url, headers=AUTH).status_code == 200

    gone = httpx.get(url, headers=AUTH)
    assert (gone.status_code, gone.json()["error"]["type"]) == (404, "NotFound")


# -- callbacks ------------------------------------------------------------------------------


def test_callbacks_arrive_on_every_status_change_and_name_the_task(byteplus, sim, receiver) -> None:
    app, url = receiver
    handle = byteplus.submit(request(callback_url=f"{url}/byteplus-callback"))

    wait_until(lambda: len(app.requests) >= 2, timeout=5 + RENDER_SECONDS)
    bodies = [json.loads(r.body) for r in app.requests]
    assert [b["status"] for b in bodies] == ["running", "succeeded"]
    assert bodies[-1]["content"]["video_url"].endswith(".mp4")
    for received in app.requests:
        hint = byteplus.callback(received.headers, received.body)
        assert (hint.task_id, hint.verified) == (handle, False)


def test_an_unsigned_body_for_another_task_is_only_a_hint_about_that_task(byteplus) -> None:
    forged = json.dumps({"id": "cgt-someone-else", "status": "succeeded"}).encode()

    hint = byteplus.callback({}, forged)

    assert (hint.task_id, hint.verified) == ("cgt-someone-else", False)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"status": "succeeded"}'])
def test_an_unreadable_callback_is_rejected(byteplus, body: bytes) -> None:
    with pytest.raises(CallbackRejected):
        byteplus.callback({}, body)


# -- health and the dialect's own checks ----------------------------------------------------


def test_the_health_probe_is_an_authenticated_list_call(byteplus, sim, provider_client) -> None:
    byteplus.health()

    broken = adapter_for("byteplus", sim, provider_client, byteplus_api_key="not-the-key")
    with pytest.raises(ProviderQuotaExhausted) as caught:
        broken.health()
    assert caught.value.code == "auth_failed"


def test_a_missing_key_gets_ark_401_envelope(sim) -> None:
    response = httpx.get(f"{tasks_url(sim)}?page_size=1")

    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("AuthenticationError", "Unauthorized")
    assert "Request id:" in error["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("duration", "5"), ("ratio", 1.78), ("resolution", "4k")],
)
def test_a_wrongly_typed_field_gets_invalid_parameter(sim, field: str, value: object) -> None:
    body = {"model": MODEL, "content": [{"type": "text", "text": "x"}], field: value}

    response = httpx.post(tasks_url(sim), headers=AUTH, json=body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidParameter"
    assert response.json()["error"]["param"] == field


def test_an_image_that_is_neither_url_nor_data_url_is_refused(sim) -> None:
    part = {"type": "image_url", "image_url": {"url": "iVBORw0KGgo="}, "role": "first_frame"}
    body = {"model": MODEL, "content": [{"type": "text", "text": "x"}, part]}

    response = httpx.post(tasks_url(sim), headers=AUTH, json=body)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "content[1].image_url.url"


def test_the_simulator_counts_byteplus_submits_and_polls(byteplus, sim) -> None:
    """What bench/run.py reads to give provider status calls per job."""
    before = stats(sim)
    handle = byteplus.submit(request())
    for _ in range(3):
        byteplus.poll(handle)

    after = stats(sim)
    assert (after["submits"] - before["submits"], after["polls"] - before["polls"]) == (1, 3)
