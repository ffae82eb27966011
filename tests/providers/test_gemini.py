"""The Gemini (Veo) adapter against the simulator's Gemini dialect, over real HTTP."""

from __future__ import annotations

import json

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

MODEL = "veo-3.1-fast-generate-preview"
#: Longer than the provider client's 1 s timeout (tests/providers/conftest.py).
HANG_SECONDS = 1.3
KEY = {"x-goog-api-key": credentials.GEMINI_API_KEY}


def request(job_id: str = "vgen_veo_1", **changes: object) -> RenderRequest:
    values: dict[str, object] = {
        "job_id": job_id,
        "model": MODEL,
        "prompt": "A lighthouse at dusk, waves rolling in",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        **changes,
    }
    return RenderRequest(**values)  # type: ignore[arg-type]


#: One client for the tests' own calls (a new httpx client costs ~0.1 s of TLS setup).
http = httpx.Client(trust_env=False, timeout=5)


def create(sim: str, body: dict[str, object], headers: dict[str, str] = KEY) -> httpx.Response:
    url = f"{sim}/gemini/v1beta/models/{MODEL}:predictLongRunning"
    return http.post(url, json=body, headers=headers)


@pytest.fixture
def veo(sim: str, provider_client: httpx.Client):  # type: ignore[no-untyped-def]
    return adapter_for("gemini", sim, provider_client)


def finished(veo, handle: str, state: RenderState):  # type: ignore[no-untyped-def]
    return wait_until(lambda: (s := veo.poll(handle)).state == state and s, timeout=5)


# -- text and image to video ----------------------------------------------------------------


def test_text_to_video_runs_until_done_with_a_video_uri(veo) -> None:
    handle = veo.submit(request())

    assert handle.startswith(f"models/{MODEL}/operations/")
    running = veo.poll(handle)
    assert (running.state, running.phase) == (RenderState.RUNNING, JobPhase.RENDERING)
    assert (running.progress, running.queue_position) == (None, None)
    done = finished(veo, handle, RenderState.SUCCEEDED)
    assert done.phase == JobPhase.FINISHING
    assert done.output_url.endswith(":download?alt=media")
    assert "/v1beta/files/" in done.output_url


def test_five_seconds_are_sent_as_six_and_ten_as_eight(veo, sim) -> None:
    veo.submit(request("vgen_a", duration_seconds=5))
    veo.submit(request("vgen_b", duration_seconds=10, aspect_ratio="9:16"))

    first, second = renders(sim)
    assert (first["dialect"], first["model"]) == ("gemini", MODEL)
    assert (first["duration_seconds"], first["aspect_ratio"]) == (6, "16:9")
    assert (second["duration_seconds"], second["aspect_ratio"]) == (8, "9:16")


def test_a_square_video_is_refused_before_anything_is_sent(veo, sim) -> None:
    with pytest.raises(ProviderRejected) as caught:
        veo.submit(request(aspect_ratio="1:1"))

    assert caught.value.code == "invalid_request"
    assert renders(sim) == []


def test_first_and_last_frames_go_inline_as_base64(veo, sim) -> None:
    handle = veo.submit(request(image=image_input(), end_image=image_input(width=400)))

    [render] = renders(sim)
    assert str(render["image"]).startswith("base64:")
    assert str(render["end_image"]).startswith("base64:")
    assert veo.poll(handle).state is RenderState.RUNNING


def test_a_public_image_link_is_still_sent_inline_because_veo_refuses_uris(veo, sim) -> None:
    veo.submit(request(image=image_input(url="https://genhook.example/v1/image-inputs/img_1")))

    [render] = renders(sim)
    assert str(render["image"]).startswith("base64:")


def test_a_last_frame_without_a_first_is_refused(veo, sim) -> None:
    with pytest.raises(ProviderRejected):
        veo.submit(request(end_image=image_input()))
    assert renders(sim) == []


def test_the_video_downloads_only_with_the_api_key(veo) -> None:
    done = finished(veo, veo.submit(request()), RenderState.SUCCEEDED)

    refused = http.get(done.output_url)
    assert refused.status_code == 403
    assert refused.json()["error"]["status"] == "PERMISSION_DENIED"
    video = http.get(done.output_url, headers=KEY)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert len(video.content) > 1000
    keyed = http.get(done.output_url, params={"key": credentials.GEMINI_API_KEY})
    assert keyed.content == video.content


# -- errors ---------------------------------------------------------------------------------

KINDS = [
    ("rate_limited", ProviderRateLimited, "rate_limited"),
    ("quota", ProviderQuotaExhausted, "quota_exhausted"),
    ("capacity", ProviderCapacity, "capacity"),
    ("unavailable", ProviderCapacity, "capacity"),
    ("auth", ProviderQuotaExhausted, "auth_failed"),
    ("server_error", ProviderTransient, "provider_error"),
    ("bad_request", ProviderRejected, "invalid_request"),
    ("content_policy", ProviderRejected, "content_policy"),
]


@pytest.mark.parametrize(("kind", "error", "code"), KINDS)
def test_submit_errors_are_classified_from_google_error_statuses(
    veo, sim, kind: str, error: type[Exception], code: str
) -> None:
    inject_fault(sim, on="submit", kind=kind, dialect="gemini")

    with pytest.raises(error) as caught:
        veo.submit(request())

    assert type(caught.value) is error
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert renders(sim) == []


@pytest.mark.parametrize(("kind", "error", "code"), KINDS[:6])
def test_poll_errors_are_classified_the_same_way(
    veo, sim, kind: str, error: type[Exception], code: str
) -> None:
    handle = veo.submit(request())
    inject_fault(sim, on="poll", kind=kind, dialect="gemini")

    with pytest.raises(error) as caught:
        veo.poll(handle)

    assert caught.value.code == code  # type: ignore[attr-defined]
    assert veo.poll(handle).state in (RenderState.RUNNING, RenderState.SUCCEEDED)


def test_a_throttle_waits_for_the_retry_delay_google_gives_in_retry_info(veo, sim) -> None:
    inject_fault(sim, on="submit", kind="rate_limited", dialect="gemini", retry_after=7)

    with pytest.raises(ProviderRateLimited) as caught:
        veo.submit(request())

    assert caught.value.retry_after_seconds == 7
    assert "RESOURCE_EXHAUSTED" in caught.value.message


def test_a_status_without_a_kind_is_answered_in_google_envelope(veo, sim) -> None:
    inject_fault(sim, on="poll", status=502, code="bad_gateway", dialect="gemini")
    handle = veo.submit(request())

    with pytest.raises(ProviderTransient) as caught:
        veo.poll(handle)

    assert caught.value.status == 502


def test_a_lost_create_answer_is_unknown_although_the_operation_exists(veo, sim) -> None:
    inject_fault(
        sim, on="submit", kind="hang_after_create", dialect="gemini", hang_seconds=HANG_SECONDS
    )

    with pytest.raises(ProviderOutcomeUnknown):
        veo.submit(request())
    assert len(renders(sim)) == 1


def test_a_hung_submit_is_unknown_although_nothing_was_created(veo, sim) -> None:
    inject_fault(sim, on="submit", kind="hang", dialect="gemini", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderOutcomeUnknown):
        veo.submit(request())
    assert renders(sim) == []


def test_a_hung_poll_is_transient(veo, sim) -> None:
    handle = veo.submit(request())
    inject_fault(sim, on="poll", kind="hang", dialect="gemini", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderTransient) as caught:
        veo.poll(handle)

    assert caught.value.code == "provider_timeout"


def test_a_render_filtered_by_responsible_ai_is_a_content_policy_failure(veo, sim) -> None:
    inject_fault(sim, on="render", kind="content_policy", dialect="gemini")
    handle = veo.submit(request())

    failed = finished(veo, handle, RenderState.FAILED)
    assert failed.error_code == "content_policy"
    assert "Responsible AI" in (failed.error_message or "")


def test_a_render_that_dies_mid_way_is_failed_with_the_operation_error(veo, sim) -> None:
    inject_fault(sim, on="render", dialect="gemini", message="Video generation failed.")
    handle = veo.submit(request())

    failed = finished(veo, handle, RenderState.FAILED)
    assert failed.error_code == "provider_failed"
    assert failed.error_message == "Veo error 2: Video generation failed."


def test_an_unknown_operation_is_rejected(veo) -> None:
    with pytest.raises(ProviderRejected):
        veo.poll(f"models/{MODEL}/operations/rndffffffffffffffffffffffff")


# -- webhooks, cancel, health ---------------------------------------------------------------


def test_the_webhook_arrives_once_done_and_names_the_operation(veo, receiver) -> None:
    app, url = receiver
    handle = veo.submit(request("vgen_hooked", callback_url=f"{url}/gemini-callback"))

    [received] = app.wait_for(1, timeout=5 + RENDER_SECONDS)
    event = json.loads(received.body)
    assert event["type"] == "video.generated"
    assert event["data"]["user_metadata"] == {"genhook_job_id": "vgen_hooked"}
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= received.headers.keys()
    hint = veo.callback(received.headers, received.body)
    assert (hint.task_id, hint.verified) == (handle, False)
    assert veo.poll(handle).state is RenderState.SUCCEEDED


def test_the_webhook_signature_is_a_jwt_from_the_published_keys(veo, sim, receiver) -> None:
    app, url = receiver
    veo.submit(request(callback_url=f"{url}/hook"))
    [received] = app.wait_for(1, timeout=5 + RENDER_SECONDS)

    keys = jwt.PyJWKSet.from_dict(http.get(f"{sim}/gemini/.well-known/jwks.json").json())
    token = received.headers["webhook-signature"]
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key, algorithms=["RS256"], audience=f"{url}/hook")
    assert claims["exp"] > claims["iat"]


def test_an_event_for_another_operation_is_only_a_hint_naming_it(veo) -> None:
    other = f"models/{MODEL}/operations/someoneelse1"
    body = json.dumps({"type": "video.generated", "data": {"id": other}}).encode()

    assert veo.callback({}, body).task_id == other


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"type": "batch.succeeded", "data": {"id": "batches/1"}}']
)
def test_an_unreadable_or_foreign_event_is_rejected(veo, body: bytes) -> None:
    with pytest.raises(CallbackRejected):
        veo.callback({}, body)


def test_veo_operations_cannot_be_cancelled(veo) -> None:
    assert veo.supports_cancel is False
    assert veo.cancel(f"models/{MODEL}/operations/x") is False


def test_the_health_probe_lists_models_with_the_key(veo, sim, provider_client) -> None:
    veo.health()

    broken = adapter_for("gemini", sim, provider_client, gemini_api_key="AIzaWrongKey")
    with pytest.raises(ProviderQuotaExhausted) as caught:
        broken.health()
    assert caught.value.code == "auth_failed"


# -- the dialect on its own -----------------------------------------------------------------


def test_a_wrong_key_is_google_400_api_key_invalid_and_a_missing_one_403(sim) -> None:
    wrong = create(sim, {"instances": [{"prompt": "x"}]}, headers={"x-goog-api-key": "AIzaNo"})
    missing = create(sim, {"instances": [{"prompt": "x"}]}, headers={})

    error = wrong.json()["error"]
    assert (wrong.status_code, error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    assert (missing.status_code, missing.json()["error"]["status"]) == (403, "PERMISSION_DENIED")


def test_duration_must_be_a_number_of_seconds_veo_renders(sim) -> None:
    as_string = create(
        sim, {"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": "8"}}
    )
    five = create(sim, {"instances": [{"prompt": "x"}], "parameters": {"durationSeconds": 5}})

    assert as_string.status_code == five.status_code == 400
    assert as_string.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_a_gcs_image_is_refused_by_the_gemini_api(sim) -> None:
    body = {"instances": [{"prompt": "x", "image": {"gcsUri": "gs://b/i.png"}}]}

    response = create(sim, body)

    assert response.status_code == 400
    assert "gcsUri" in response.json()["error"]["message"]


def test_an_unknown_model_is_not_found(sim) -> None:
    url = f"{sim}/gemini/v1beta/models/veo-9:predictLongRunning"

    response = http.post(url, json={"instances": [{"prompt": "x"}]}, headers=KEY)

    assert (response.status_code, response.json()["error"]["status"]) == (404, "NOT_FOUND")


def test_the_simulator_counts_gemini_submits_and_polls(veo, sim) -> None:
    """What bench/run.py reads to give provider status calls per job."""
    before = stats(sim)
    handle = veo.submit(request())
    for _ in range(3):
        veo.poll(handle)

    after = stats(sim)
    assert (after["submits"] - before["submits"], after["polls"] - before["polls"]) == (1, 3)
