"""The Runway adapter against the simulator's Runway dialect, over real HTTP.

Each test is a small story: given what the simulated Runway is set up to do, when the
adapter submits, polls, cancels or probes, then genhook sees the right state or error kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from backend.errors import (
    ProviderCapacity,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderQuotaExhausted,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTransient,
)
from backend.jobs.states import JobPhase
from backend.providers.base import (
    CallbackRejected,
    ImageInput,
    Provider,
    RenderRequest,
    RenderState,
    RenderStatus,
)
from backend.providers.runway import RUNWAY_VERSION
from backend.simulator.app import create_app as create_simulator
from backend.simulator.credentials import RUNWAY_API_KEY
from tests.providers.conftest import adapter_for, image_input
from tests.support.faults import CONTROL_HEADERS, CONTROL_TOKEN, inject_fault
from tests.support.wsgi_server import serve_wsgi

NAME = "runway"
DEADLINE_SECONDS = 5.0


class SteppedClock:
    """A farm clock the test moves by hand, so every status can be seen on purpose."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def runway(sim: str, provider_client: httpx.Client) -> Provider:
    return adapter_for(NAME, sim, provider_client)


@pytest.fixture
def stepped() -> Iterator[tuple[str, SteppedClock]]:
    clock = SteppedClock()
    simulator = create_simulator(render_seconds=10.0, clock=clock, control_token=CONTROL_TOKEN)
    with serve_wsgi(simulator) as url:
        yield url, clock


def request(**changes: Any) -> RenderRequest:
    fields: dict[str, Any] = {
        "job_id": "job_runway_1",
        "model": "gen4.5",
        "prompt": "a slow dolly shot over a misty harbour at dawn",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
    }
    return RenderRequest(**{**fields, **changes})


def poll_until(
    adapter: Provider, handle: str, done: Callable[[RenderStatus], bool]
) -> RenderStatus:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        status = adapter.poll(handle)
        if done(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.02)


def received(sim: str) -> dict[str, Any]:
    """What the farm last received through the Runway dialect."""
    renders = [
        r
        for r in httpx.get(f"{sim}/_sim/renders", headers=CONTROL_HEADERS).json()
        if r["dialect"] == NAME
    ]
    return renders[-1]


def raw_task(sim: str, task_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {RUNWAY_API_KEY}", "X-Runway-Version": RUNWAY_VERSION}
    result: dict[str, Any] = httpx.get(f"{sim}/runway/v1/tasks/{task_id}", headers=headers).json()
    return result


# -- submit: what reaches Runway ----------------------------------------------------------------


def test_text_to_video_sends_pixel_ratio_and_integer_duration(sim: str, runway: Provider) -> None:
    runway.submit(request(aspect_ratio="9:16", duration_seconds=10))

    render = received(sim)
    assert (render["model"], render["aspect_ratio"], render["duration_seconds"]) == (
        "gen4.5",
        "720:1280",
        10,
    )
    assert render["image"] is None


def test_image_with_a_public_https_url_is_sent_by_url(sim: str, runway: Provider) -> None:
    frame = image_input(url="https://media.example.com/frames/first.png")

    runway.submit(request(image=frame, aspect_ratio="1:1"))

    render = received(sim)
    assert render["image"] == "url:https://media.example.com/frames/first.png"
    assert render["aspect_ratio"] == "960:960"


def test_image_without_a_public_url_is_sent_inline_as_a_data_uri(
    sim: str, runway: Provider
) -> None:
    runway.submit(request(image=image_input()))

    assert received(sim)["image"].startswith("data-url:")


def test_image_url_runway_cannot_fetch_falls_back_to_a_data_uri(sim: str, runway: Provider) -> None:
    runway.submit(request(image=image_input(url="http://127.0.0.1:8000/frames/first.png")))

    assert received(sim)["image"].startswith("data-url:")


def test_first_and_last_frame_go_as_positions_and_duration_snaps_for_veo(
    sim: str, runway: Provider
) -> None:
    first = image_input(url="https://media.example.com/first.png")
    last = image_input(url="https://media.example.com/last.png")

    runway.submit(request(model="veo3.1", image=first, end_image=last, duration_seconds=5))

    render = received(sim)
    assert render["image"] == "url:https://media.example.com/first.png"
    assert render["end_image"] == "url:https://media.example.com/last.png"
    assert render["duration_seconds"] == 6


def test_gen45_refuses_a_last_frame_as_invalid_request(runway: Provider) -> None:
    frames = {"image": image_input(), "end_image": image_input(width=320, height=180)}

    with pytest.raises(ProviderRejected) as refused:
        runway.submit(request(**frames))

    assert refused.value.code == "invalid_request"
    assert "position" in refused.value.message


def test_gen45_text_only_square_video_is_refused_by_runway(runway: Provider) -> None:
    with pytest.raises(ProviderRejected) as refused:
        runway.submit(request(aspect_ratio="1:1"))

    assert refused.value.code == "invalid_request"
    assert "ratio" in refused.value.message


def test_image_too_big_to_inline_needs_a_public_url(sim: str, runway: Provider) -> None:
    huge = ImageInput(data=b"\0" * (4 * 1024 * 1024), content_type="image/png", width=1, height=1)

    with pytest.raises(ProviderRejected) as refused:
        runway.submit(request(image=huge))

    assert refused.value.code == "image_needs_public_url"
    assert httpx.get(f"{sim}/_sim/stats", headers=CONTROL_HEADERS).json()["submits"] == 0


# -- poll: statuses -----------------------------------------------------------------------------


def test_task_goes_from_pending_through_running_to_succeeded(
    stepped: tuple[str, SteppedClock], provider_client: httpx.Client
) -> None:
    sim, clock = stepped
    adapter = adapter_for(NAME, sim, provider_client)
    handle = adapter.submit(request())

    queued = adapter.poll(handle)
    clock.now = 3.0
    rendering = adapter.poll(handle)
    clock.now = 8.0
    encoding = adapter.poll(handle)
    clock.now = 10.0
    done = adapter.poll(handle)

    assert (queued.state, queued.phase) == (RenderState.QUEUED, JobPhase.QUEUED)
    assert (rendering.state, rendering.phase, rendering.progress) == (
        RenderState.RUNNING,
        JobPhase.RENDERING,
        30.0,
    )
    assert (encoding.phase, encoding.progress) == (JobPhase.ENCODING, 80.0)
    assert (done.state, done.phase) == (RenderState.SUCCEEDED, JobPhase.FINISHING)
    assert done.output_url and done.output_url.endswith(f"{handle}.mp4")


def test_output_url_downloads_an_mp4_and_refetching_gives_it_again(
    runway: Provider,
) -> None:
    handle = runway.submit(request())
    done = poll_until(runway, handle, lambda s: s.state.is_terminal)

    video = httpx.get(str(done.output_url))

    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4" and len(video.content) > 0
    assert runway.poll(handle).output_url == done.output_url


def test_throttled_task_is_queued_not_an_error(sim: str, runway: Provider) -> None:
    inject_fault(sim, on="submit", kind="capacity", dialect=NAME, retry_after=1)

    handle = runway.submit(request())
    throttled = runway.poll(handle)

    assert raw_task(sim, handle)["status"] == "THROTTLED"
    assert (throttled.state, throttled.phase) == (RenderState.QUEUED, JobPhase.QUEUED)
    assert poll_until(runway, handle, lambda s: s.state.is_terminal).state is RenderState.SUCCEEDED


@pytest.mark.parametrize(
    ("kind", "error_code", "failure_code"),
    [
        ("content_policy", "content_policy", "SAFETY.OUTPUT.VIDEO"),
        ("internal", "provider_transient", "INTERNAL.BAD_OUTPUT.CODE01"),
        ("capacity", "capacity", "THIRD_PARTY.UNAVAILABLE"),
    ],
)
def test_render_that_dies_midway_fails_with_runways_failure_code(
    sim: str, runway: Provider, kind: str, error_code: str, failure_code: str
) -> None:
    inject_fault(sim, on="render", kind=kind, dialect=NAME, at_phase="rendering")

    handle = runway.submit(request())
    failed = poll_until(runway, handle, lambda s: s.state.is_terminal)

    assert (failed.state, failed.error_code) == (RenderState.FAILED, error_code)
    assert failure_code in str(failed.error_message)


def test_prompt_refused_by_moderation_fails_the_task_not_the_create(
    sim: str, runway: Provider
) -> None:
    inject_fault(sim, on="submit", kind="content_policy", dialect=NAME)

    handle = runway.submit(request())
    failed = runway.poll(handle)

    assert (failed.state, failed.error_code) == (RenderState.FAILED, "content_policy")
    assert "SAFETY.INPUT.TEXT" in str(failed.error_message)


def test_unknown_task_is_not_found(runway: Provider) -> None:
    with pytest.raises(ProviderRejected) as refused:
        runway.poll("rnd_does_not_exist")

    assert refused.value.code == "not_found"


# -- errors at submit and at poll -----------------------------------------------------------------

ERRORS: list[tuple[str, type[ProviderError], str]] = [
    ("rate_limited", ProviderRateLimited, "rate_limited"),
    ("quota", ProviderQuotaExhausted, "quota_exhausted"),
    ("auth", ProviderQuotaExhausted, "auth_failed"),
    ("server_error", ProviderTransient, "provider_error"),
    ("unavailable", ProviderCapacity, "capacity"),
    ("bad_request", ProviderRejected, "invalid_request"),
]


@pytest.mark.parametrize(("kind", "error", "code"), ERRORS)
def test_submit_errors_map_to_their_kind(
    sim: str, runway: Provider, kind: str, error: type[ProviderError], code: str
) -> None:
    inject_fault(sim, on="submit", kind=kind, dialect=NAME)

    with pytest.raises(error) as raised:
        runway.submit(request())

    assert type(raised.value) is error and raised.value.code == code


@pytest.mark.parametrize(
    ("kind", "error", "code"), [*ERRORS, ("capacity", ProviderCapacity, "capacity")]
)
def test_poll_errors_map_to_their_kind(
    sim: str, runway: Provider, kind: str, error: type[ProviderError], code: str
) -> None:
    handle = runway.submit(request())
    inject_fault(sim, on="poll", kind=kind, dialect=NAME)

    with pytest.raises(error) as raised:
        runway.poll(handle)

    assert type(raised.value) is error and raised.value.code == code


def test_rate_limit_carries_retry_after(sim: str, runway: Provider) -> None:
    inject_fault(sim, on="submit", kind="rate_limited", dialect=NAME, retry_after=7)

    with pytest.raises(ProviderRateLimited) as raised:
        runway.submit(request())

    assert raised.value.retry_after_seconds == 7


def test_submit_that_hangs_is_an_unknown_outcome(sim: str, runway: Provider) -> None:
    inject_fault(sim, on="submit", kind="hang", dialect=NAME, hang_seconds=1.5)

    with pytest.raises(ProviderOutcomeUnknown):
        runway.submit(request())


def test_poll_that_hangs_is_transient(sim: str, runway: Provider) -> None:
    handle = runway.submit(request())
    inject_fault(sim, on="poll", kind="hang", dialect=NAME, hang_seconds=1.5)

    with pytest.raises(ProviderTransient) as raised:
        runway.poll(handle)

    assert raised.value.code == "provider_timeout"


def test_lost_answer_after_create_is_unknown_and_the_task_exists(
    sim: str, runway: Provider
) -> None:
    inject_fault(sim, on="submit", kind="hang_after_create", dialect=NAME, hang_seconds=1.5)

    with pytest.raises(ProviderOutcomeUnknown):
        runway.submit(request())

    assert received(sim)["model"] == "gen4.5"


# -- cancel ----------------------------------------------------------------------------------------


def test_cancel_stops_an_unfinished_task(
    stepped: tuple[str, SteppedClock], provider_client: httpx.Client
) -> None:
    sim, clock = stepped
    adapter = adapter_for(NAME, sim, provider_client)
    handle = adapter.submit(request())
    clock.now = 3.0

    assert adapter.supports_cancel and adapter.cancel(handle) is True

    assert raw_task(sim, handle)["status"] == "CANCELLED"
    assert adapter.poll(handle).state is RenderState.CANCELED


def test_cancel_of_a_finished_task_deletes_it(runway: Provider) -> None:
    handle = runway.submit(request())
    poll_until(runway, handle, lambda s: s.state.is_terminal)

    assert runway.cancel(handle) is True

    with pytest.raises(ProviderRejected) as gone:
        runway.poll(handle)
    assert gone.value.code == "not_found"


# -- health and callbacks ----------------------------------------------------------------------


def test_health_reads_the_organisation(runway: Provider) -> None:
    runway.health()


def test_health_with_a_refused_key_is_auth_failed(sim: str, provider_client: httpx.Client) -> None:
    adapter = adapter_for(NAME, sim, provider_client, runway_api_key="key_wrong")

    with pytest.raises(ProviderQuotaExhausted) as raised:
        adapter.health()

    assert raised.value.code == "auth_failed"


def test_health_with_no_credits_left_is_quota_exhausted(sim: str, runway: Provider) -> None:
    inject_fault(sim, on="poll", kind="quota", dialect=NAME)

    with pytest.raises(ProviderQuotaExhausted) as raised:
        runway.health()

    assert raised.value.code == "quota_exhausted"


def test_runway_sends_no_callbacks(runway: Provider) -> None:
    with pytest.raises(CallbackRejected):
        runway.callback({}, b'{"id": "rnd_1", "status": "SUCCEEDED"}')


# -- the dialect on its own --------------------------------------------------------------------


def create(sim: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    base = {"Authorization": f"Bearer {RUNWAY_API_KEY}", "X-Runway-Version": RUNWAY_VERSION}
    return httpx.post(f"{sim}/runway/v1/text_to_video", json=body, headers={**base, **headers})


GOOD_BODY = {"model": "gen4.5", "promptText": "waves", "ratio": "1280:720", "duration": 5}


def test_dialect_refuses_a_wrong_key_with_401(sim: str) -> None:
    answer = create(sim, GOOD_BODY, Authorization="Bearer key_wrong")

    assert answer.status_code == 401
    assert set(answer.json()) == {"error", "docUrl"}


@pytest.mark.parametrize("version", ["", "v1"])
def test_dialect_requires_a_valid_version_header(sim: str, version: str) -> None:
    answer = create(sim, GOOD_BODY, **{"X-Runway-Version": version})

    assert answer.status_code == 400
    assert "X-Runway-Version" in answer.json()["error"]


@pytest.mark.parametrize(
    ("field", "value"), [("duration", "5"), ("ratio", "16:9"), ("promptText", 42)]
)
def test_dialect_refuses_wrongly_typed_fields_with_issues(sim: str, field: str, value: Any) -> None:
    answer = create(sim, {**GOOD_BODY, field: value})

    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "Validation of body failed"
    assert body["issues"][0]["path"] == [field]


def test_dialect_answers_create_with_only_an_id(sim: str) -> None:
    answer = create(sim, GOOD_BODY)

    assert answer.status_code == 200 and list(answer.json()) == ["id"]
    assert raw_task(sim, answer.json()["id"])["status"] in ("PENDING", "RUNNING")
