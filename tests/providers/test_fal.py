"""The fal adapter against the simulator's fal dialect, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from backend.errors import (
    ProviderCapacity,
    ProviderOutcomeUnknown,
    ProviderQuotaExhausted,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTransient,
)
from backend.jobs.states import JobPhase
from backend.providers import fal as fal_module
from backend.providers.base import CallbackRejected, RenderRequest, RenderState
from backend.simulator import credentials
from backend.simulator.app import create_app as create_simulator
from tests.conftest import wait_until
from tests.providers.conftest import RENDER_SECONDS, adapter_for, image_input
from tests.support.faults import CONTROL_TOKEN, inject_fault, renders
from tests.support.wsgi_server import serve_wsgi

pytestmark = pytest.mark.timeout(30)

MODEL = "fal-ai/kling-video/o3/pro/text-to-video"
AUTH = {"Authorization": f"Key {credentials.FAL_KEY}"}
#: Longer than the provider client's 1 s timeout (tests/providers/conftest.py).
HANG_SECONDS = 1.3


def request(job_id: str = "vgen_fal_1", **changes: object) -> RenderRequest:
    values: dict[str, object] = {
        "job_id": job_id,
        "model": MODEL,
        "prompt": "A sunlit loft, slow dolly in",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
        **changes,
    }
    return RenderRequest(**values)  # type: ignore[arg-type]


def raw_id(handle: str) -> str:
    return handle.split("|")[-1]


def until_state(adapter, handle: str, state: RenderState):  # type: ignore[no-untyped-def]
    return wait_until(lambda: (s := adapter.poll(handle)).state == state and s, timeout=5)


@pytest.fixture
def fal(sim: str, provider_client: httpx.Client):  # type: ignore[no-untyped-def]
    return adapter_for("fal", sim, provider_client)


class KeySet:
    """A JWKS endpoint under the test's control, to sign webhooks the way fal does."""

    def __init__(self) -> None:
        self.keys = [Ed25519PrivateKey.generate()]
        self.fetches = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.fetches += 1
        jwks = {"keys": [_jwk(key) for key in self.keys]}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(jwks).encode()]

    def sign(
        self, body: dict[str, Any], *, request_id: str, at: float | None = None, key: int = 0
    ) -> tuple[dict[str, str], bytes]:
        raw = json.dumps(body).encode()
        sent_at = str(int(time.time() if at is None else at))
        message = f"{request_id}\nuser_1\n{sent_at}\n{hashlib.sha256(raw).hexdigest()}"
        headers = {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": "user_1",
            "X-Fal-Webhook-Timestamp": sent_at,
            "X-Fal-Webhook-Signature": self.keys[key].sign(message.encode()).hex(),
        }
        return headers, raw


def _jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).decode().rstrip("=")}


@pytest.fixture
def keyset(sim: str, provider_client: httpx.Client) -> Iterator[tuple[KeySet, Any]]:
    keys = KeySet()
    with serve_wsgi(keys) as url:
        yield keys, adapter_for("fal", sim, provider_client, fal_jwks_url=url)


def webhook_body(request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "gateway_request_id": request_id,
        "status": "OK",
        "payload": {"video": {"url": "https://v3.fal.media/files/x/out.mp4"}},
        "error": None,
    }


# -- text and image to video --------------------------------------------------------------


def test_text_to_video_goes_from_in_queue_through_in_progress_to_completed(fal, sim) -> None:
    handle = fal.submit(request())

    assert handle.startswith("fal-ai/kling-video|")
    first = fal.poll(handle)
    assert (first.state, first.phase, first.queue_position) == (
        RenderState.QUEUED,
        JobPhase.QUEUED,
        0,
    )
    running = until_state(fal, handle, RenderState.RUNNING)
    assert running.phase == JobPhase.RENDERING
    done = until_state(fal, handle, RenderState.SUCCEEDED)
    assert done.phase == JobPhase.FINISHING
    video = httpx.get(done.output_url)
    assert (video.status_code, video.headers["content-type"]) == (200, "video/mp4")
    assert len(video.content) > 1000


def test_fal_receives_the_model_endpoint_a_string_duration_and_the_ratio(fal, sim) -> None:
    fal.submit(request(duration_seconds=10, aspect_ratio="9:16"))

    [render] = renders(sim)
    assert (render["dialect"], render["model"]) == ("fal", MODEL)
    assert (render["duration_seconds"], render["aspect_ratio"]) == (10, "9:16")
    assert render["image"] is None


def test_a_first_frame_goes_inline_as_a_data_uri_to_the_image_to_video_endpoint(fal, sim) -> None:
    handle = fal.submit(request(image=image_input()))

    [render] = renders(sim)
    assert render["model"] == "fal-ai/kling-video/o3/pro/image-to-video"
    assert str(render["image"]).startswith("data-url:")
    assert render["aspect_ratio"] == "auto"  # image-to-video takes its ratio from the frame
    assert fal.poll(handle).state in (RenderState.QUEUED, RenderState.RUNNING)


def test_frames_go_as_links_when_genhook_has_them(fal, sim) -> None:
    first = "https://genhook.example/v1/image-inputs/img_1?signature=a"
    last = "https://genhook.example/v1/image-inputs/img_2?signature=b"

    fal.submit(request(image=image_input(url=first), end_image=image_input(url=last)))

    [render] = renders(sim)
    assert (render["image"], render["end_image"]) == (f"url:{first}", f"url:{last}")


def test_a_last_frame_without_a_first_is_refused_before_anything_is_sent(fal, sim) -> None:
    with pytest.raises(ProviderRejected) as caught:
        fal.submit(request(end_image=image_input()))

    assert caught.value.code == "invalid_request"
    assert renders(sim) == []


def test_a_waiting_request_reports_its_place_in_fal_queue(provider_client) -> None:
    with serve_wsgi(create_simulator(render_seconds=10, control_token=CONTROL_TOKEN)) as slow_sim:
        fal = adapter_for("fal", slow_sim, provider_client)
        handles = [fal.submit(request(f"vgen_{n}")) for n in range(3)]

        assert [fal.poll(h).queue_position for h in handles] == [0, 1, 2]


def test_the_callback_url_travels_as_the_fal_webhook_query_parameter(fal, sim) -> None:
    fal.submit(request(callback_url="https://genhook.example/v1/callbacks/fal/tok?x=1"))

    [render] = renders(sim)
    assert render["callback_url"] == "https://genhook.example/v1/callbacks/fal/tok?x=1"


# -- errors ---------------------------------------------------------------------------------

ERROR_KINDS = [
    ("rate_limited", ProviderRateLimited, "rate_limited"),
    ("capacity", ProviderCapacity, "capacity"),
    ("quota", ProviderQuotaExhausted, "quota_exhausted"),
    ("auth", ProviderQuotaExhausted, "auth_failed"),
    ("server_error", ProviderTransient, "provider_error"),
    ("unavailable", ProviderCapacity, "capacity"),
    ("bad_request", ProviderRejected, "invalid_request"),
    ("content_policy", ProviderRejected, "content_policy"),
]


@pytest.mark.parametrize(("kind", "error", "code"), ERROR_KINDS)
def test_submit_errors_are_classified_from_fal_detail_and_error_type(
    fal, sim, kind: str, error: type[Exception], code: str
) -> None:
    inject_fault(sim, on="submit", kind=kind, dialect="fal")

    with pytest.raises(error) as caught:
        fal.submit(request())

    assert type(caught.value) is error
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert renders(sim) == []


@pytest.mark.parametrize(("kind", "error", "code"), ERROR_KINDS)
def test_status_errors_are_classified_the_same_way(
    fal, sim, kind: str, error: type[Exception], code: str
) -> None:
    handle = fal.submit(request())
    inject_fault(sim, on="poll", kind=kind, dialect="fal")

    with pytest.raises(error) as caught:
        fal.poll(handle)

    assert caught.value.code == code  # type: ignore[attr-defined]
    assert fal.poll(handle).state in (RenderState.QUEUED, RenderState.RUNNING)


def test_a_rate_limit_carries_retry_after(fal, sim) -> None:
    inject_fault(sim, on="submit", kind="rate_limited", dialect="fal", retry_after=7)

    with pytest.raises(ProviderRateLimited) as caught:
        fal.submit(request())

    assert caught.value.retry_after_seconds == 7


def test_an_exhausted_balance_names_fal_lock_in_the_message(fal, sim) -> None:
    inject_fault(sim, on="submit", kind="quota", dialect="fal")

    with pytest.raises(ProviderQuotaExhausted) as caught:
        fal.submit(request())

    assert (caught.value.status, caught.value.code) == (403, "quota_exhausted")
    assert "Exhausted balance" in caught.value.message


def test_a_hung_submit_is_unknown(sim, provider_client) -> None:
    fal = adapter_for("fal", sim, provider_client)
    inject_fault(sim, on="submit", kind="hang", dialect="fal", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderOutcomeUnknown):
        fal.submit(request())


def test_a_lost_answer_after_the_request_was_queued_is_unknown(sim, provider_client) -> None:
    fal = adapter_for("fal", sim, provider_client)
    inject_fault(
        sim, on="submit", kind="hang_after_create", dialect="fal", hang_seconds=HANG_SECONDS
    )

    with pytest.raises(ProviderOutcomeUnknown):
        fal.submit(request())

    assert len(renders(sim)) == 1
    assert fal.supports_find_task is False  # fal has no idempotency key to look it up by


def test_a_hung_status_call_is_transient_not_unknown(sim, provider_client) -> None:
    fal = adapter_for("fal", sim, provider_client)
    handle = fal.submit(request())
    inject_fault(sim, on="poll", kind="hang", dialect="fal", hang_seconds=HANG_SECONDS)

    with pytest.raises(ProviderTransient) as caught:
        fal.poll(handle)
    assert not isinstance(caught.value, ProviderOutcomeUnknown)


@pytest.mark.parametrize(
    ("kind", "code"), [("content_policy", "content_policy"), (None, "provider_failed")]
)
def test_a_render_that_dies_mid_way_is_completed_with_an_error(
    fal, sim, kind: str | None, code: str
) -> None:
    rule: dict[str, object] = {"on": "render", "dialect": "fal", "at_phase": "rendering"}
    if kind:
        rule["kind"] = kind
    inject_fault(sim, **rule)
    handle = fal.submit(request())

    failed = until_state(fal, handle, RenderState.FAILED)
    assert failed.error_code == code
    assert failed.error_message


def test_input_fal_refuses_in_the_queue_fails_the_request_as_invalid(fal, sim) -> None:
    queued = httpx.post(f"{sim}/fal/{MODEL}", headers=AUTH, json={"prompt": "x", "duration": 5})
    assert queued.status_code == 200  # fal validates in the queue, not at submit

    failed = fal.poll(f"fal-ai/kling-video|{queued.json()['request_id']}")

    assert (failed.state, failed.error_code) == (RenderState.FAILED, "invalid_request")
    assert "literal_error" in str(failed.error_message)


# -- cancel ---------------------------------------------------------------------------------


def test_a_cancelled_request_ends_cancelled_and_cannot_be_cancelled_twice(fal, sim) -> None:
    handle = fal.submit(request())

    assert fal.cancel(handle) is True
    assert fal.poll(handle).state == RenderState.CANCELED
    assert fal.cancel(handle) is False  # ALREADY_COMPLETED


def test_cancelling_an_unknown_request_has_nothing_to_stop(fal) -> None:
    assert fal.cancel("fal-ai/kling-video|rnd_unknown") is False


# -- webhooks -------------------------------------------------------------------------------


def test_fal_calls_once_at_the_end_with_a_signed_webhook_naming_the_request(
    fal, sim, receiver
) -> None:
    app, url = receiver
    handle = fal.submit(request(callback_url=f"{url}/fal-callback"))

    wait_until(lambda: app.requests, timeout=5 + RENDER_SECONDS)
    until_state(fal, handle, RenderState.SUCCEEDED)
    [received] = app.requests
    body = json.loads(received.body)
    assert (body["status"], body["request_id"]) == ("OK", raw_id(handle))
    assert body["payload"]["video"]["content_type"] == "video/mp4"
    hint = fal.callback(received.headers, received.body)
    assert (hint.task_id, hint.verified) == (raw_id(handle), True)


def test_a_failed_request_is_reported_as_error_with_the_model_detail(fal, sim, receiver) -> None:
    app, url = receiver
    inject_fault(sim, on="render", kind="content_policy", dialect="fal", at_phase="rendering")
    handle = fal.submit(request(callback_url=f"{url}/fal-callback"))

    [received] = wait_until(lambda: app.requests, timeout=5 + RENDER_SECONDS)
    body = json.loads(received.body)
    assert (body["status"], body["error"]) == ("ERROR", "Invalid status code: 422")
    assert body["payload"]["detail"][0]["type"] == "content_policy_violation"
    assert fal.callback(received.headers, received.body).task_id == raw_id(handle)


def test_a_tampered_body_is_rejected(fal, sim, receiver) -> None:
    app, url = receiver
    fal.submit(request(callback_url=f"{url}/fal-callback"))
    [received] = wait_until(lambda: app.requests, timeout=5 + RENDER_SECONDS)

    with pytest.raises(CallbackRejected):
        fal.callback(received.headers, received.body.replace(b'"OK"', b'"ERROR"'))


def test_a_webhook_signed_long_ago_is_rejected_as_a_replay(keyset) -> None:
    keys, fal = keyset
    headers, raw = keys.sign(webhook_body("req_1"), request_id="req_1", at=time.time() - 301)

    with pytest.raises(CallbackRejected, match="timestamp"):
        fal.callback(headers, raw)


def test_a_signature_by_a_key_fal_does_not_publish_is_rejected(keyset) -> None:
    _, fal = keyset
    stranger = KeySet()
    headers, raw = stranger.sign(webhook_body("req_1"), request_id="req_1")

    with pytest.raises(CallbackRejected):
        fal.callback(headers, raw)


@pytest.mark.parametrize(
    "missing", ["X-Fal-Webhook-Signature", "X-Fal-Webhook-Timestamp", "X-Fal-Webhook-User-Id"]
)
def test_a_webhook_missing_a_signature_header_is_rejected(keyset, missing: str) -> None:
    keys, fal = keyset
    headers, raw = keys.sign(webhook_body("req_1"), request_id="req_1")
    del headers[missing]

    with pytest.raises(CallbackRejected):
        fal.callback(headers, raw)


def test_a_signed_body_about_another_request_names_that_request(keyset) -> None:
    keys, fal = keyset
    headers, raw = keys.sign(webhook_body("req_other"), request_id="req_other")

    hint = fal.callback(headers, raw)

    assert (hint.task_id, hint.verified) == ("req_other", True)


def test_a_rotated_key_is_fetched_again_once(keyset, monkeypatch) -> None:
    keys, fal = keyset
    fal.callback(*keys.sign(webhook_body("req_1"), request_id="req_1"))
    monkeypatch.setattr(fal_module, "JWKS_REFETCH_GAP_SECONDS", 0)
    keys.keys.append(Ed25519PrivateKey.generate())

    hint = fal.callback(*keys.sign(webhook_body("req_2"), request_id="req_2", key=1))

    assert hint.task_id == "req_2"
    assert keys.fetches == 2


def test_forged_webhooks_do_not_refetch_the_keys_each_time(keyset) -> None:
    keys, fal = keyset
    forger = KeySet()
    for n in range(3):
        with pytest.raises(CallbackRejected):
            fal.callback(*forger.sign(webhook_body(f"req_{n}"), request_id=f"req_{n}"))

    assert keys.fetches == 1


# -- health and the dialect itself ----------------------------------------------------------


def test_the_health_probe_accepts_fal_not_found_and_refuses_a_bad_key(
    fal, sim, provider_client
) -> None:
    fal.health()

    broken = adapter_for("fal", sim, provider_client, fal_key="sim-fal-key-id:wrong")
    with pytest.raises(ProviderQuotaExhausted) as caught:
        broken.health()
    assert caught.value.code == "auth_failed"


def test_a_wrong_key_gets_fal_401_detail(sim) -> None:
    response = httpx.post(f"{sim}/fal/{MODEL}", headers={"Authorization": "Key nope"}, json={})

    assert response.status_code == 401
    assert response.json() == {"detail": "No user found for Key ID and Secret"}


def test_an_integer_duration_fails_in_the_queue_with_fal_422_detail(sim) -> None:
    queued = httpx.post(f"{sim}/fal/{MODEL}", headers=AUTH, json={"prompt": "x", "duration": 5})
    base = f"{sim}/fal/fal-ai/kling-video/requests/{queued.json()['request_id']}"

    status = httpx.get(f"{base}/status", headers=AUTH).json()
    result = httpx.get(base, headers=AUTH)

    assert (status["status"], status["error_type"]) == ("COMPLETED", "literal_error")
    assert result.status_code == 422
    assert result.json()["detail"][0]["loc"] == ["body", "duration"]


def test_requests_live_under_owner_and_app_only(sim) -> None:
    queued = httpx.post(f"{sim}/fal/{MODEL}", headers=AUTH, json={"prompt": "x"}).json()

    other_app = httpx.get(
        f"{sim}/fal/fal-ai/other-app/requests/{queued['request_id']}/status", headers=AUTH
    )

    assert queued["status_url"].endswith(
        f"/fal/fal-ai/kling-video/requests/{queued['request_id']}/status"
    )
    assert other_app.status_code == 404


def test_in_progress_status_carries_logs_when_asked(sim) -> None:
    queued = httpx.post(f"{sim}/fal/{MODEL}", headers=AUTH, json={"prompt": "x"}).json()

    status = wait_until(
        lambda: (
            (s := httpx.get(f"{queued['status_url']}?logs=1", headers=AUTH).json())["status"]
            == "IN_PROGRESS"
            and s
        ),
        timeout=5,
    )

    assert status["logs"][0]["message"].startswith("Generating video")


def test_the_jwks_publishes_an_ed25519_key(sim) -> None:
    [key] = httpx.get(f"{sim}/fal/.well-known/jwks.json").json()["keys"]

    assert (key["kty"], key["crv"]) == ("OKP", "Ed25519")
    assert len(base64.urlsafe_b64decode(key["x"] + "=")) == 32
