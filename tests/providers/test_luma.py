"""The Luma adapter against the simulator's Luma (Dream Machine) dialect, over real HTTP."""

from __future__ import annotations

import json
import uuid

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
from backend.providers.luma import build
from backend.simulator import credentials
from tests.conftest import wait_until
from tests.providers.conftest import RENDER_SECONDS, adapter_for, image_input, sim_settings
from tests.support.faults import inject_fault, renders

pytestmark = pytest.mark.timeout(30)

#: Longer than the provider client's 1 s timeout (tests/providers/conftest.py).
HANG_SECONDS = 1.3
FIRST_FRAME = "https://genhook.example/v1/image-inputs/img_1?expires=1&signature=abc"
LAST_FRAME = "https://genhook.example/v1/image-inputs/img_2?expires=1&signature=def"
AUTH = {"Authorization": f"Bearer {credentials.LUMA_API_KEY}"}


def request(job_id: str = "vgen_luma_1", **changes: object) -> RenderRequest:
    values: dict[str, object] = {
        "job_id": job_id,
        "model": "ray-2",
        "prompt": "A sunlit loft, slow dolly in",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        **changes,
    }
    return RenderRequest(**values)  # type: ignore[arg-type]


def create(sim: str, body: dict[str, object], headers: dict[str, str] = AUTH) -> httpx.Response:
    return httpx.post(f"{sim}/luma/dream-machine/v1/generations/video", json=body, headers=headers)


@pytest.fixture
def luma(sim: str, provider_client: httpx.Client):  # type: ignore[no-untyped-def]
    return adapter_for("luma", sim, provider_client)


# -- text and image to video --------------------------------------------------------------


def test_text_to_video_goes_from_queued_through_dreaming_to_completed(luma) -> None:
    handle = luma.submit(request())

    assert uuid.UUID(handle)  # Luma's ids are UUIDs, used as the handle unchanged
    first = luma.poll(handle)
    assert (first.state, first.phase) == (RenderState.QUEUED, JobPhase.QUEUED)
    running = wait_until(lambda: (s := luma.poll(handle)).state == RenderState.RUNNING and s)
    assert (running.phase, running.progress, running.queue_position) == (
        JobPhase.RENDERING,
        None,
        None,
    )
    done = wait_until(
        lambda: (s := luma.poll(handle)).state == RenderState.SUCCEEDED and s, timeout=5
    )
    assert done.phase == JobPhase.FINISHING
    assert done.output_url


def test_the_output_downloads_as_mp4(luma) -> None:
    handle = luma.submit(request())
    done = wait_until(
        lambda: (s := luma.poll(handle)).state == RenderState.SUCCEEDED and s, timeout=5
    )

    video = httpx.get(done.output_url)

    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert len(video.content) > 1000


def test_what_luma_receives_is_ray_2_at_720p_with_a_string_duration(luma, sim) -> None:
    luma.submit(request(aspect_ratio="9:16"))

    [render] = renders(sim)
    assert render["dialect"] == "luma"
    assert (render["model"], render["duration_seconds"], render["aspect_ratio"]) == (
        "ray-2",
        5,
        "9:16",
    )
    assert render["image"] is None


def test_ten_seconds_is_sent_as_luma_nine(luma, sim) -> None:
    luma.submit(request(duration_seconds=10))

    [render] = renders(sim)
    assert render["duration_seconds"] == 9


def test_first_and_last_frames_go_as_keyframe_urls(luma, sim) -> None:
    image, end_image = image_input(url=FIRST_FRAME), image_input(url=LAST_FRAME)

    handle = luma.submit(request(image=image, end_image=end_image))

    [render] = renders(sim)
    assert (render["image"], render["end_image"]) == (f"url:{FIRST_FRAME}", f"url:{LAST_FRAME}")
    assert luma.poll(handle).state in (RenderState.QUEUED, RenderState.RUNNING)


@pytest.mark.parametrize("frame", ["image", "end_image"])
def test_a_frame_without_a_public_url_is_refused_before_anything_is_sent(
    luma, sim, frame: str
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        luma.submit(request(**{frame: image_input()}))

    assert caught.value.code == "image_needs_public_url"
    assert renders(sim) == []


def test_the_callback_url_goes_in_the_body(luma, sim) -> None:
    luma.submit(request(callback_url="https://genhook.example/v1/provider-callbacks/luma/t1"))

    [render] = renders(sim)
    assert render["callback_url"] == "https://genhook.example/v1/provider-callbacks/luma/t1"


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("rate_limited", ProviderRateLimited, "rate_limited"),
        ("capacity", ProviderCapacity, "capacity"),
        ("quota", ProviderQuotaExhausted, "quota_exhausted"),
        ("auth", ProviderQuotaExhausted, "auth_failed"),
        ("server_error", ProviderTransient, "provider_error"),
        ("unavailable", ProviderTransient, "provider_error"),
        ("bad_request", ProviderRejected, "invalid_request"),
    ],
)
def test_submit_errors_are_classified_from_status_and_detail(
    luma, sim, kind: str, error: type[Exception], code: str
) -> None:
    inject_fault(sim, on="submit", kind=kind, dialect="luma")

    with pytest.raises(error) as caught:
        luma.submit(request())

    assert caught.value.code == code  # type: ignore[attr-defined]
    assert renders(sim) == []


def test_a_rate_limit_carries_retry_after(luma, sim) -> None:
    inject_fault(sim, on="submit", kind="rate_limited", dialect="luma", retry_after=7)

    with pytest.raises(ProviderRateLimited) as caught:
        luma.submit(request())

    assert caught.value.retry_after_seconds == 7


def test_a_prompt_luma_finds_too_short_is_invalid_with_its_message(luma, sim) -> None:
    with pytest.raises(ProviderRejected) as caught:
        luma.submit(request(prompt="ab"))

    assert caught.value.code == "invalid_request"
    assert "Prompt is too short, minimum length is 3 characters" in caught.value.message
    assert renders(sim) == []


def test_moderation_at_submit_is_a_failed_generation_not_a_refusal(luma, sim) -> None:
    inject_fault(sim, on="submit", kind="content_policy", dialect="luma")

    handle = luma.submit(request())

    failed = luma.poll(handle)
    assert (failed.state, failed.error_code) == (RenderState.FAILED, "content_policy")
    assert failed.error_message == "Contains blacklisted words"


@pytest.mark.parametrize(
    ("kind", "code", "reason"),
    [
        ("content_policy", "content_policy", "Advanced prompt moderation failed"),
        (None, "provider_failed", "Job failed"),
    ],
)
def test_a_render_that_dies_mid_way_is_failed_with_luma_failure_reason(
    luma, sim, kind: str | None, code: str, reason: str
) -> None:
    rule: dict[str, object] = {"on": "render", "dialect": "luma", "at_phase": "rendering"}
    if kind:
        rule["kind"] = kind
    inject_fault(sim, **rule)
    handle = luma.submit(request())

    failed = wait_until(
        lambda: (s := luma.poll(handle)).state == RenderState.FAILED and s, timeout=5
    )
    assert (failed.error_code, failed.error_message) == (code, reason)


def test_a_hung_submit_is_unknown(luma, sim) -> None:
    inject_fault(sim, on="submit", kind="hang", dialect="luma", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderOutcomeUnknown):
        luma.submit(request())
    assert renders(sim) == []


def test_a_lost_answer_after_the_generation_was_created_is_unknown(luma, sim) -> None:
    inject_fault(
        sim, on="submit", kind="hang_after_create", dialect="luma", hang_seconds=HANG_SECONDS
    )

    with pytest.raises(ProviderOutcomeUnknown):
        luma.submit(request())
    assert len(renders(sim)) == 1
    assert luma.supports_find_task is False


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("rate_limited", ProviderRateLimited, "rate_limited"),
        ("capacity", ProviderCapacity, "capacity"),
        ("auth", ProviderQuotaExhausted, "auth_failed"),
        ("server_error", ProviderTransient, "provider_error"),
    ],
)
def test_poll_errors_are_classified_too(
    luma, sim, kind: str, error: type[Exception], code: str
) -> None:
    handle = luma.submit(request())
    inject_fault(sim, on="poll", kind=kind, dialect="luma", retry_after=3)

    with pytest.raises(error) as caught:
        luma.poll(handle)

    assert caught.value.code == code  # type: ignore[attr-defined]
    assert luma.poll(handle).state in (RenderState.QUEUED, RenderState.RUNNING)


def test_a_hung_poll_is_transient_not_unknown(luma, sim) -> None:
    handle = luma.submit(request())
    inject_fault(sim, on="poll", kind="hang", dialect="luma", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderTransient) as caught:
        luma.poll(handle)

    assert caught.value.code == "provider_timeout"


def test_polling_an_unknown_generation_is_refused(luma) -> None:
    with pytest.raises(ProviderRejected):
        luma.poll(str(uuid.uuid4()))


# -- callbacks ------------------------------------------------------------------------------


def test_callbacks_arrive_when_dreaming_and_completed_and_name_the_generation(
    luma, sim, receiver
) -> None:
    app, url = receiver
    handle = luma.submit(request(callback_url=f"{url}/luma-callback"))

    received = app.wait_for(2, timeout=5 + RENDER_SECONDS)
    states = [json.loads(r.body)["state"] for r in app.requests]
    assert states == ["dreaming", "completed"]
    assert json.loads(app.requests[-1].body)["assets"]["video"].endswith(".mp4")
    for callback in received:
        hint = luma.callback(callback.headers, callback.body)
        assert (hint.task_id, hint.verified) == (handle, False)


def test_a_moderated_generation_calls_back_once_as_failed(luma, sim, receiver) -> None:
    app, url = receiver
    inject_fault(sim, on="submit", kind="content_policy", dialect="luma")

    luma.submit(request(callback_url=f"{url}/luma-callback"))

    [callback] = app.wait_for(1, timeout=5)
    body = json.loads(callback.body)
    assert (body["state"], body["failure_reason"]) == ("failed", "Contains blacklisted words")


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"state": "completed"}', b'{"id": 42}', b'{"id": ""}']
)
def test_an_unreadable_callback_is_rejected(luma, body: bytes) -> None:
    with pytest.raises(CallbackRejected):
        luma.callback({}, body)


# -- the rest -------------------------------------------------------------------------------


def test_luma_has_no_cancel(luma) -> None:
    assert luma.supports_cancel is False
    assert luma.cancel(str(uuid.uuid4())) is False


def test_the_health_probe_reads_the_credit_balance(luma, sim, provider_client) -> None:
    luma.health()

    broken = adapter_for("luma", sim, provider_client, luma_api_key="luma-not-the-key")
    with pytest.raises(ProviderQuotaExhausted) as caught:
        broken.health()
    assert caught.value.code == "auth_failed"


def test_the_adapter_is_off_without_an_api_key(provider_client) -> None:
    settings = sim_settings("http://127.0.0.1:9", luma_api_key="")

    assert build(settings, provider_client) is None


# -- the dialect on its own -----------------------------------------------------------------


def test_a_wrong_key_gets_luma_401_detail(sim) -> None:
    response = create(sim, {"model": "ray-2", "prompt": "a loft"}, headers={})

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid API key"}


def test_a_numeric_duration_is_a_422_with_fastapi_field_errors(sim) -> None:
    response = create(sim, {"model": "ray-2", "prompt": "a loft", "duration": 5})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "duration"]


def test_the_documented_loop_and_keyframe_message(sim) -> None:
    frame = {"type": "image", "url": FIRST_FRAME}
    body = {"model": "ray-2", "prompt": "a loft", "loop": True, "keyframes": {"frame1": frame}}

    response = create(sim, body)

    assert response.status_code == 400
    assert response.json() == {"detail": "Loop is not supported for end frame"}


def test_the_generation_object_has_luma_fields(sim) -> None:
    created = create(sim, {"model": "ray-2", "prompt": "a loft", "duration": "9s"})

    assert created.status_code == 201
    generation = created.json()
    assert generation["state"] == "queued"
    assert generation["request"]["duration"] == "9s"
    assert set(generation) >= {"id", "state", "failure_reason", "assets", "created_at", "model"}
    credits = httpx.get(f"{sim}/luma/dream-machine/v1/credits", headers=AUTH).json()
    assert credits["credit_balance"] > 0
