"""The Kling adapter against the simulator's Kling dialect, over real HTTP."""

from __future__ import annotations

import json
import time

import httpx
import jwt
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
from tests.conftest import wait_until
from tests.providers.conftest import RENDER_SECONDS, adapter_for, image_input
from tests.support.faults import inject_fault, renders, stats

pytestmark = pytest.mark.timeout(30)

#: Longer than the provider client's 1 s timeout (tests/providers/conftest.py).
HANG_SECONDS = 1.3


def request(job_id: str = "vgen_kling_1", **changes: object) -> RenderRequest:
    values: dict[str, object] = {
        "job_id": job_id,
        "model": "kling-v3",
        "prompt": "A sunlit loft, slow dolly in",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        **changes,
    }
    return RenderRequest(**values)  # type: ignore[arg-type]


@pytest.fixture
def kling(sim: str, provider_client: httpx.Client):  # type: ignore[no-untyped-def]
    return adapter_for("kling", sim, provider_client)


def token(**claims: object) -> str:
    now = int(time.time())
    payload = {"iss": credentials.KLING_ACCESS_KEY, "exp": now + 60, "nbf": now - 5, **claims}
    return jwt.encode(payload, credentials.KLING_SECRET_KEY, algorithm="HS256")


# -- text and image to video --------------------------------------------------------------


def test_text_to_video_goes_from_submitted_through_processing_to_succeed(kling, sim) -> None:
    handle = kling.submit(request())

    assert handle.startswith("text2video|")
    first = kling.poll(handle)
    assert (first.state, first.phase) == (RenderState.QUEUED, JobPhase.QUEUED)
    wait_until(lambda: kling.poll(handle).state == RenderState.RUNNING, timeout=5, interval=0.02)
    done = wait_until(
        lambda: (s := kling.poll(handle)).state == RenderState.SUCCEEDED and s, timeout=5
    )
    assert done.phase == JobPhase.FINISHING
    video = httpx.get(done.output_url)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert len(video.content) > 1000


def test_what_kling_receives_is_its_own_field_names_and_string_duration(kling, sim) -> None:
    kling.submit(request(duration_seconds=10, aspect_ratio="9:16"))

    [render] = renders(sim)
    assert render["dialect"] == "kling"
    assert render["model"] == "kling-v3"
    assert render["duration_seconds"] == 10
    assert render["aspect_ratio"] == "9:16"


def test_image_to_video_sends_raw_base64_without_data_prefix(kling, sim) -> None:
    handle = kling.submit(request(image=image_input(), end_image=image_input(width=400)))

    assert handle.startswith("image2video|")
    [render] = renders(sim)
    assert str(render["image"]).startswith("base64:")
    assert str(render["end_image"]).startswith("base64:")
    assert kling.poll(handle).state in (RenderState.QUEUED, RenderState.RUNNING)


def test_image_to_video_sends_the_signed_link_when_genhook_has_one(kling, sim) -> None:
    link = "https://genhook.example/v1/image-inputs/img_1?expires=1&signature=abc"

    kling.submit(request(image=image_input(url=link)))

    [render] = renders(sim)
    assert render["image"] == f"url:{link}"


def test_a_data_url_is_refused_by_kling_as_invalid(sim) -> None:
    response = httpx.post(
        f"{sim}/kling/v1/videos/image2video",
        headers={"Authorization": f"Bearer {token()}"},
        json={"model_name": "kling-v3", "image": "data:image/png;base64,AAAA"},
    )

    assert response.status_code == 400
    assert response.json()["code"] == 1201


# -- idempotency ----------------------------------------------------------------------------


def test_a_lost_answer_is_unknown_and_the_task_is_found_by_the_job_id(sim, provider_client):
    kling = adapter_for("kling", sim, provider_client)
    inject_fault(
        sim, on="submit", kind="hang_after_create", dialect="kling", hang_seconds=HANG_SECONDS
    )

    with pytest.raises(ProviderOutcomeUnknown):
        kling.submit(request("vgen_lost"))

    found = kling.find_task("vgen_lost")
    assert found is not None and found.startswith("text2video|")
    assert len(renders(sim)) == 1
    assert kling.poll(found).state != RenderState.FAILED


def test_find_task_answers_none_when_nothing_was_created(kling) -> None:
    assert kling.find_task("vgen_never_sent") is None


def test_a_second_task_with_the_same_job_id_is_refused(kling, sim) -> None:
    kling.submit(request("vgen_once"))

    with pytest.raises(ProviderRejected):
        kling.submit(request("vgen_once"))
    assert len(renders(sim)) == 1


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("rate_limited", ProviderRateLimited, "rate_limited"),
        ("capacity", ProviderCapacity, "capacity"),
        ("quota", ProviderQuotaExhausted, "quota_exhausted"),
        ("auth", ProviderQuotaExhausted, "auth_failed"),
        ("server_error", ProviderTransient, "provider_error"),
        ("unavailable", ProviderCapacity, "capacity"),
        ("bad_request", ProviderRejected, "invalid_request"),
        ("content_policy", ProviderRejected, "content_policy"),
    ],
)
def test_submit_errors_are_classified_from_kling_business_codes(
    kling, sim, kind: str, error: type[Exception], code: str
) -> None:
    inject_fault(sim, on="submit", kind=kind, dialect="kling")

    with pytest.raises(error) as caught:
        kling.submit(request())

    assert caught.value.code == code  # type: ignore[attr-defined]
    assert renders(sim) == []


def test_a_rate_limit_carries_retry_after(kling, sim) -> None:
    inject_fault(sim, on="submit", kind="rate_limited", dialect="kling", retry_after=7)

    with pytest.raises(ProviderRateLimited) as caught:
        kling.submit(request())

    assert caught.value.retry_after_seconds == 7


def test_a_hung_submit_before_anything_was_created_is_unknown(sim, provider_client) -> None:
    kling = adapter_for("kling", sim, provider_client)
    inject_fault(sim, on="submit", kind="hang", dialect="kling", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderOutcomeUnknown):
        kling.submit(request("vgen_hung"))
    assert kling.find_task("vgen_hung") is None


def test_poll_errors_are_classified_too(kling, sim) -> None:
    handle = kling.submit(request())
    inject_fault(sim, on="poll", kind="server_error", dialect="kling")
    inject_fault(sim, on="poll", kind="rate_limited", dialect="kling")

    with pytest.raises(ProviderTransient):
        kling.poll(handle)
    with pytest.raises(ProviderRateLimited):
        kling.poll(handle)
    assert kling.poll(handle).state in (RenderState.QUEUED, RenderState.RUNNING)


def test_a_hung_poll_is_transient_not_unknown(sim, provider_client) -> None:
    kling = adapter_for("kling", sim, provider_client)
    handle = kling.submit(request())
    inject_fault(sim, on="poll", kind="hang", dialect="kling", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderTransient):
        kling.poll(handle)


@pytest.mark.parametrize(
    ("kind", "code"), [("content_policy", "content_policy"), (None, "provider_failed")]
)
def test_a_render_that_dies_mid_way_is_failed_with_kling_message(
    kling, sim, kind: str | None, code: str
) -> None:
    rule: dict[str, object] = {"on": "render", "dialect": "kling", "at_phase": "rendering"}
    if kind:
        rule["kind"] = kind
    inject_fault(sim, **rule)
    handle = kling.submit(request())

    failed = wait_until(
        lambda: (s := kling.poll(handle)).state == RenderState.FAILED and s, timeout=5
    )
    assert failed.error_code == code
    assert failed.error_message


def test_a_refused_token_is_kling_1000_and_an_expired_one_1004(sim) -> None:
    wrong = jwt.encode({"iss": credentials.KLING_ACCESS_KEY, "exp": 9999999999, "nbf": 0}, "x" * 32)
    expired = token(exp=int(time.time()) - 10)
    url = f"{sim}/kling/v1/videos/text2video/anything"

    assert httpx.get(url).json()["code"] == 1001
    assert httpx.get(url, headers={"Authorization": f"Bearer {wrong}"}).json()["code"] == 1000
    response = httpx.get(url, headers={"Authorization": f"Bearer {expired}"})
    assert (response.status_code, response.json()["code"]) == (401, 1004)


def test_duration_must_be_a_string(sim) -> None:
    response = httpx.post(
        f"{sim}/kling/v1/videos/text2video",
        headers={"Authorization": f"Bearer {token()}"},
        json={"model_name": "kling-v3", "prompt": "x", "duration": 5},
    )

    assert (response.status_code, response.json()["code"]) == (400, 1201)


# -- callbacks and the rest -----------------------------------------------------------------


def test_callbacks_arrive_on_every_status_change_and_name_the_task(kling, sim, receiver) -> None:
    app, url = receiver
    handle = kling.submit(request(callback_url=f"{url}/kling-callback"))
    raw_id = handle.split("|")[1]

    wait_until(lambda: len(app.requests) >= 2, timeout=5 + RENDER_SECONDS)
    statuses = [json.loads(r.body)["task_status"] for r in app.requests]
    assert statuses == ["processing", "succeed"]
    for received in app.requests:
        hint = kling.callback(received.headers, received.body)
        assert hint.task_id == raw_id
        assert hint.verified is False


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"task_status": "succeed"}'])
def test_an_unreadable_callback_is_rejected(kling, body: bytes) -> None:
    with pytest.raises(CallbackRejected):
        kling.callback({}, body)


def test_kling_has_no_cancel(kling) -> None:
    assert kling.supports_cancel is False
    assert kling.cancel("text2video|x") is False


def test_the_health_probe_is_an_authenticated_list_call(kling, sim, provider_client) -> None:
    kling.health()

    broken = adapter_for("kling", sim, provider_client, kling_secret_key="not-the-secret-" * 3)
    with pytest.raises(ProviderQuotaExhausted):
        broken.health()


def test_the_simulator_counts_kling_submits_and_polls(kling, sim) -> None:
    """What bench/run.py reads to give provider status calls per job."""
    before = stats(sim)
    handle = kling.submit(request())
    for _ in range(3):
        kling.poll(handle)

    after = stats(sim)
    assert (after["submits"] - before["submits"], after["polls"] - before["polls"]) == (1, 3)
