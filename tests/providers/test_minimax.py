"""The MiniMax (Hailuo) adapter against the simulator's MiniMax dialect, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
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
from backend.providers import minimax
from backend.providers.base import (
    CallbackRejected,
    ImageInput,
    Provider,
    RenderRequest,
    RenderState,
    RenderStatus,
)
from backend.simulator.app import create_app as create_simulator
from backend.simulator.credentials import MINIMAX_API_KEY
from tests.conftest import wait_until
from tests.providers.conftest import adapter_for, image_input, sim_settings
from tests.support.faults import CONTROL_HEADERS, CONTROL_TOKEN, inject_fault, stats
from tests.support.receiver import WebhookReceiver
from tests.support.wsgi_server import serve_wsgi

pytestmark = pytest.mark.timeout(30)

NAME = "minimax"
MODEL = "MiniMax-Hailuo-02"
#: One client for the test's own calls to the simulator (a fresh one per call is slow).
_http = httpx.Client(trust_env=False, timeout=5.0)


@pytest.fixture
def adapter(sim: str, provider_client: httpx.Client) -> Provider:
    return adapter_for(NAME, sim, provider_client)


@pytest.fixture
def impatient_adapter(sim: str) -> Iterator[Provider]:
    """An adapter that gives up after 0.3 s, so hangs are cheap to test."""
    with httpx.Client(timeout=0.3, trust_env=False) as client:
        yield adapter_for(NAME, sim, client)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_sim(clock: FakeClock) -> Iterator[str]:
    """A simulator whose renders take 10 s of a clock the test moves by hand."""
    simulator = create_simulator(render_seconds=10.0, clock=clock, control_token=CONTROL_TOKEN)
    with serve_wsgi(simulator) as url:
        yield url


def render_request(
    *,
    duration: int = 5,
    image: ImageInput | None = None,
    end_image: ImageInput | None = None,
    callback_url: str | None = None,
) -> RenderRequest:
    return RenderRequest(
        job_id="job_minimax_1",
        model=MODEL,
        prompt="A glass of water tips over in slow motion",
        duration_seconds=duration,
        aspect_ratio="16:9",
        image=image,
        end_image=end_image,
        callback_url=callback_url,
    )


def received(sim: str) -> list[dict[str, Any]]:
    """What the farm was asked to render through the MiniMax dialect."""
    renders = _http.get(f"{sim}/_sim/renders", headers=CONTROL_HEADERS).json()
    return [r for r in renders if r["dialect"] == NAME]


def wait_for(adapter: Provider, task_id: str, state: RenderState) -> RenderStatus:
    def reached() -> RenderStatus | None:
        status = adapter.poll(task_id)
        return status if status.state == state else None

    result: RenderStatus = wait_until(reached, timeout=3.0)
    return result


def raw_call(
    sim: str, method: str, path: str, *, key: str | None = MINIMAX_API_KEY, **kw: Any
) -> httpx.Response:
    """A request straight to the dialect, with MiniMax's bearer key unless told otherwise."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return _http.request(method, f"{sim}/{NAME}{path}", headers=headers, **kw)


# -- creating renders -----------------------------------------------------------------------


def test_text_to_video_renders_5s_as_6s_and_the_output_downloads(
    sim: str, adapter: Provider
) -> None:
    task_id = adapter.submit(render_request(duration=5))

    status = wait_for(adapter, task_id, RenderState.SUCCEEDED)

    [render] = received(sim)
    assert render["id"] == task_id
    assert (render["model"], render["duration_seconds"], render["image"]) == (MODEL, 6, None)
    assert status.phase is JobPhase.FINISHING
    assert status.output_url is not None
    video = _http.get(status.output_url)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4" and video.content


def test_ten_seconds_stays_ten(sim: str, adapter: Provider) -> None:
    adapter.submit(render_request(duration=10))

    assert received(sim)[0]["duration_seconds"] == 10


def test_a_first_frame_with_a_public_url_is_sent_as_that_url(sim: str, adapter: Provider) -> None:
    adapter.submit(render_request(image=image_input(url="https://cdn.example/frame.png")))

    assert received(sim)[0]["image"] == "url:https://cdn.example/frame.png"


def test_a_first_frame_without_a_public_url_is_sent_as_a_data_url(
    sim: str, adapter: Provider
) -> None:
    adapter.submit(render_request(image=image_input()))

    assert received(sim)[0]["image"].startswith("data-url:")


def test_an_end_image_becomes_the_last_frame(sim: str, adapter: Provider) -> None:
    adapter.submit(
        render_request(image=image_input(), end_image=image_input(url="https://x/e.png"))
    )

    [render] = received(sim)
    assert render["image"].startswith("data-url:")
    assert render["end_image"] == "url:https://x/e.png"


# -- status mapping -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "state", "phase"),
    [
        (0.0, RenderState.QUEUED, JobPhase.PREPARING),  # MiniMax "Preparing"
        (1.5, RenderState.QUEUED, JobPhase.QUEUED),  # "Queueing"
        (3.0, RenderState.RUNNING, JobPhase.RENDERING),  # "Processing"
        (9.5, RenderState.RUNNING, JobPhase.RENDERING),  # still "Processing"
        (10.0, RenderState.SUCCEEDED, JobPhase.FINISHING),  # "Success" + file_id
    ],
)
def test_minimax_statuses_map_to_states_and_phases(
    clocked_sim: str,
    clock: FakeClock,
    provider_client: httpx.Client,
    elapsed: float,
    state: RenderState,
    phase: JobPhase,
) -> None:
    adapter = adapter_for(NAME, clocked_sim, provider_client)
    task_id = adapter.submit(render_request())

    clock.now = elapsed
    status = adapter.poll(task_id)

    assert (status.state, status.phase) == (state, phase)
    assert status.progress is None and status.queue_position is None
    assert (status.output_url is not None) == (state is RenderState.SUCCEEDED)


@pytest.mark.parametrize(
    ("kind", "error_code"), [("content_policy", "content_policy"), (None, "provider_failed")]
)
def test_a_render_failing_mid_way_is_failed_with_its_reason(
    sim: str, adapter: Provider, kind: str | None, error_code: str
) -> None:
    inject_fault(sim, on="render", kind=kind, code="render_broke", dialect=NAME)
    task_id = adapter.submit(render_request())

    status = wait_for(adapter, task_id, RenderState.FAILED)

    assert status.error_code == error_code
    assert status.error_message and status.error_message.startswith("MiniMax 10")


# -- errors ---------------------------------------------------------------------------------

ERRORS = [
    ("rate_limited", ProviderRateLimited, "rate_limited"),
    ("capacity", ProviderCapacity, "capacity"),
    ("quota", ProviderQuotaExhausted, "quota_exhausted"),
    ("auth", ProviderQuotaExhausted, "auth_failed"),
    ("server_error", ProviderTransient, "provider_error"),
    ("unavailable", ProviderCapacity, "capacity"),
    ("bad_request", ProviderRejected, "invalid_request"),
    ("content_policy", ProviderRejected, "content_policy"),
]


@pytest.mark.parametrize(("kind", "error", "code"), ERRORS)
def test_submit_errors_become_the_right_kind(
    sim: str, adapter: Provider, kind: str, error: type[ProviderError], code: str
) -> None:
    inject_fault(sim, on="submit", kind=kind, dialect=NAME)

    with pytest.raises(ProviderError) as caught:
        adapter.submit(render_request())

    assert type(caught.value) is error and caught.value.code == code
    assert received(sim) == []


@pytest.mark.parametrize(("kind", "error", "code"), ERRORS)
def test_poll_errors_become_the_right_kind(
    sim: str, adapter: Provider, kind: str, error: type[ProviderError], code: str
) -> None:
    task_id = adapter.submit(render_request())
    inject_fault(sim, on="poll", kind=kind, dialect=NAME)

    with pytest.raises(ProviderError) as caught:
        adapter.poll(task_id)

    assert type(caught.value) is error and caught.value.code == code


def test_a_rate_limit_carries_its_retry_after(sim: str, adapter: Provider) -> None:
    inject_fault(sim, on="submit", kind="rate_limited", retry_after=7, dialect=NAME)

    with pytest.raises(ProviderRateLimited) as caught:
        adapter.submit(render_request())

    assert caught.value.retry_after_seconds == 7
    assert "1002" in caught.value.message


def test_an_http_error_without_kind_is_classified_by_its_status(
    sim: str, adapter: Provider
) -> None:
    inject_fault(sim, on="submit", status=502, dialect=NAME)

    with pytest.raises(ProviderTransient) as caught:
        adapter.submit(render_request())

    assert caught.value.status == 502


def test_a_submit_that_hangs_is_an_unknown_outcome(sim: str, impatient_adapter: Provider) -> None:
    inject_fault(sim, on="submit", kind="hang", hang_seconds=0.6, dialect=NAME)

    with pytest.raises(ProviderOutcomeUnknown):
        impatient_adapter.submit(render_request())


def test_a_lost_answer_after_creating_is_an_unknown_outcome_and_the_task_exists(
    sim: str, impatient_adapter: Provider
) -> None:
    inject_fault(sim, on="submit", kind="hang_after_create", hang_seconds=0.6, dialect=NAME)

    with pytest.raises(ProviderOutcomeUnknown):
        impatient_adapter.submit(render_request())

    assert len(received(sim)) == 1


def test_a_poll_that_hangs_is_transient(sim: str, impatient_adapter: Provider) -> None:
    task_id = impatient_adapter.submit(render_request())
    inject_fault(sim, on="poll", kind="hang", hang_seconds=0.6, dialect=NAME)

    with pytest.raises(ProviderTransient) as caught:
        impatient_adapter.poll(task_id)

    assert caught.value.code == "provider_timeout"


def test_polling_an_unknown_task_is_rejected(adapter: Provider) -> None:
    with pytest.raises(ProviderRejected) as caught:
        adapter.poll("rnd_000000000000000000000000")

    assert caught.value.code == "invalid_request"


def test_there_is_no_cancel(adapter: Provider) -> None:
    task_id = adapter.submit(render_request())

    assert adapter.supports_cancel is False and adapter.cancel(task_id) is False
    assert adapter.supports_find_task is False


# -- callbacks ------------------------------------------------------------------------------


class CallbackRoute:
    """Stands in for genhook's callback route: reads each POST with the adapter and answers
    with its ``reply`` (the challenge echoed), as the API does."""

    def __init__(self, adapter: Provider) -> None:
        self.adapter = adapter
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.bodies.append(json.loads(raw))
        hint = self.adapter.callback({}, raw)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(hint.reply or {"status": "success"}).encode()]

    def updates(self) -> list[dict[str, Any]]:
        return [body for body in self.bodies if "challenge" not in body]


def test_a_callback_url_is_checked_first_then_gets_each_status_change(
    sim: str, adapter: Provider
) -> None:
    route = CallbackRoute(adapter)
    with serve_wsgi(route) as url:
        task_id = adapter.submit(render_request(callback_url=f"{url}/minimax"))
        assert list(route.bodies[0]) == ["challenge"]  # before the task existed

        wait_until(lambda: len(route.updates()) >= 2, timeout=3.0)

    updates = route.updates()
    assert [u["status"] for u in updates] == ["processing", "success"]
    assert updates[1]["file_id"] and updates[1]["base_resp"]["status_code"] == 0
    assert {adapter.callback({}, json.dumps(u).encode()).task_id for u in updates} == {task_id}


def test_a_callback_url_that_does_not_echo_the_challenge_fails_the_creation(
    sim: str, adapter: Provider
) -> None:
    with serve_wsgi(WebhookReceiver()) as url, pytest.raises(ProviderRejected) as caught:
        adapter.submit(render_request(callback_url=url))

    assert caught.value.code == "invalid_request"
    assert received(sim) == []


def test_a_challenge_is_answered_with_the_same_challenge(adapter: Provider) -> None:
    hint = adapter.callback({}, b'{"challenge": "1a3cs1j-601a-118y"}')

    assert hint.task_id is None and hint.reply == {"challenge": "1a3cs1j-601a-118y"}


def test_a_status_update_is_an_unverified_hint_for_its_task(adapter: Provider) -> None:
    body = b'{"task_id": "106916112212032", "status": "success", "file_id": "2052"}'

    hint = adapter.callback({}, body)

    assert (hint.task_id, hint.verified, hint.reply) == ("106916112212032", False, None)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"status": "success"}', b'{"task_id": ""}'])
def test_a_body_that_is_neither_is_rejected(adapter: Provider, body: bytes) -> None:
    with pytest.raises(CallbackRejected):
        adapter.callback({}, body)


# -- health and configuration ---------------------------------------------------------------


def test_the_health_probe_lists_files_with_the_key(adapter: Provider) -> None:
    adapter.health()


def test_the_health_probe_fails_with_a_wrong_key(sim: str, provider_client: httpx.Client) -> None:
    adapter = adapter_for(NAME, sim, provider_client, minimax_api_key="not-the-key")

    with pytest.raises(ProviderQuotaExhausted) as caught:
        adapter.health()

    assert caught.value.code == "auth_failed"


def test_the_adapter_is_off_without_an_api_key(provider_client: httpx.Client) -> None:
    settings = sim_settings("http://sim", minimax_api_key="")

    assert minimax.build(settings, provider_client) is None


# -- the dialect on its own -----------------------------------------------------------------


@pytest.mark.parametrize(("key", "code"), [(None, 1004), ("wrong", 2049)])
def test_the_dialect_refuses_bad_auth_in_a_200_base_resp(
    sim: str, key: str | None, code: int
) -> None:
    answer = raw_call(sim, "POST", "/v1/video_generation", key=key, json={"model": MODEL})

    assert answer.status_code == 200
    assert answer.json()["base_resp"]["status_code"] == code


@pytest.mark.parametrize(
    "fields",
    [
        {"duration": "6"},  # a string, where MiniMax wants an integer
        {"duration": 5},
        {"resolution": "1080P", "duration": 10},
        {"prompt": "x" * 2001},
        {"first_frame_image": "iVBORw0KGgo="},  # base64 without the data: prefix
    ],
)
def test_the_dialect_refuses_wrong_fields_with_2013(sim: str, fields: dict[str, Any]) -> None:
    body = {"model": MODEL, "prompt": "a cat", "duration": 6, "resolution": "768P", **fields}

    answer = raw_call(sim, "POST", "/v1/video_generation", json=body)

    assert answer.status_code == 200
    assert answer.json()["base_resp"]["status_code"] == 2013
    assert received(sim) == []


def test_the_dialect_answers_in_minimax_shapes(sim: str) -> None:
    body = {"model": MODEL, "prompt": "a cat", "duration": 6, "resolution": "768P"}
    created = raw_call(sim, "POST", "/v1/video_generation", json=body).json()
    task_id = created["task_id"]
    assert created["base_resp"] == {"status_code": 0, "status_msg": "success"}

    def finished() -> dict[str, Any] | None:
        params = {"task_id": task_id}
        task = raw_call(sim, "GET", "/v1/query/video_generation", params=params).json()
        return task if task["status"] == "Success" else None

    task = wait_until(finished, timeout=3.0)
    assert task["file_id"] and task["video_width"] and task["video_height"]
    params = {"file_id": task["file_id"]}
    file = raw_call(sim, "GET", "/v1/files/retrieve", params=params).json()["file"]
    assert file["purpose"] == "video_generation"
    assert file["download_url"].endswith(".mp4")


def test_the_simulator_counts_minimax_submits_and_polls(adapter, sim) -> None:
    """What bench/run.py reads to give provider status calls per job."""
    before = stats(sim)
    handle = adapter.submit(render_request())
    for _ in range(3):
        adapter.poll(handle)

    after = stats(sim)
    assert (after["submits"] - before["submits"], after["polls"] - before["polls"]) == (1, 3)
