"""The render-farm simulator, driven over real HTTP the way genhook's workers drive a provider.

Time is a fake clock handed to the app, so each phase of a render can be visited exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from backend.simulator.app import RENDER_SECONDS_ENV, create_app, gunicorn_app
from tests.support.faults import CONTROL_HEADERS, CONTROL_TOKEN
from tests.support.wsgi_server import serve_wsgi

RENDER_SECONDS = 20.0
RENDER_SHAPE = {
    "id",
    "model",
    "status",
    "progress",
    "eta_seconds",
    "output_url",
    "error",
    "created_at",
    "queue_position",
}


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def transport() -> Iterator[httpx.HTTPTransport]:
    """One transport for the whole module: building one (and its TLS context) costs ~25 ms."""
    with httpx.HTTPTransport() as shared:
        yield shared


@pytest.fixture
def farm(clock: FakeClock, transport: httpx.HTTPTransport) -> Iterator[httpx.Client]:
    """A client for a fresh simulator whose renders take RENDER_SECONDS of the fake clock."""
    app = create_app(render_seconds=RENDER_SECONDS, clock=clock, control_token=CONTROL_TOKEN)
    with serve_wsgi(app) as url:
        # Not closed here: closing a client closes its transport, which the module shares.
        yield httpx.Client(base_url=url, transport=transport, timeout=5.0, headers=CONTROL_HEADERS)


def a_render_request(**overrides: Any) -> dict[str, Any]:
    body = {
        "model": "veo-sim",
        "prompt": "a lighthouse in a storm",
        "duration_seconds": 5,
        "aspect_ratio": "16:9",
    }
    body.update(overrides)
    return body


def submit(client: httpx.Client, key: str | None = None, **overrides: Any) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post("/v1/renders", json=a_render_request(**overrides), headers=headers)


def a_render(client: httpx.Client, **overrides: Any) -> str:
    """Given step: a render exists; returns its id."""
    response = submit(client, **overrides)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def poll(client: httpx.Client, render_id: str) -> httpx.Response:
    return client.get(f"/v1/renders/{render_id}")


def status_of(client: httpx.Client, render_id: str) -> str:
    response = poll(client, render_id)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def a_fault(client: httpx.Client, **rule: Any) -> None:
    """Given step: the farm will misbehave as `rule` says."""
    response = client.post("/_sim/faults", json=rule)
    assert response.status_code == 201, response.text


def render_ids(client: httpx.Client) -> list[str]:
    return [render["id"] for render in client.get("/_sim/renders").json()]


def base_url(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


# -- health -----------------------------------------------------------------------------------


def test_healthz_reports_ok(farm: httpx.Client) -> None:
    response = farm.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


# -- submitting -------------------------------------------------------------------------------


def test_submit_acknowledges_a_queued_render_of_the_requested_model(farm: httpx.Client) -> None:
    response = submit(farm, model="kling-sim")

    body = response.json()
    assert response.status_code == 201
    assert (body["status"], body["model"]) == ("queued", "kling-sim")


def test_submit_assigns_a_render_id(farm: httpx.Client) -> None:
    response = submit(farm)

    assert re.fullmatch(r"rnd_[0-9a-f]+", response.json()["id"])


def test_submit_stamps_creation_time_in_utc(farm: httpx.Client) -> None:
    before = datetime.now(UTC)

    created_at = datetime.fromisoformat(submit(farm).json()["created_at"])

    assert created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= created_at <= datetime.now(UTC)


def test_submit_answers_in_the_same_shape_as_a_poll(farm: httpx.Client) -> None:
    submitted = submit(farm).json()

    polled = poll(farm, submitted["id"]).json()

    assert set(submitted) == set(polled) == RENDER_SHAPE


@pytest.mark.parametrize("field", ["model", "prompt", "duration_seconds", "aspect_ratio"])
def test_submit_without_a_required_field_is_an_invalid_request(
    farm: httpx.Client, field: str
) -> None:
    body = a_render_request()
    del body[field]

    response = farm.post("/v1/renders", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert field in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"duration_seconds": "5"},
        {"duration_seconds": True},
        {"duration_seconds": 0},
        {"prompt": 42},
        {"model": ""},
        {"aspect_ratio": None},
    ],
    ids=[
        "duration-as-text",
        "duration-as-bool",
        "zero-duration",
        "numeric-prompt",
        "empty-model",
        "null-aspect-ratio",
    ],
)
def test_submit_with_an_invalid_field_is_an_invalid_request(
    farm: httpx.Client, overrides: dict[str, Any]
) -> None:
    response = submit(farm, **overrides)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_request")


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]"], ids=["empty", "garbled", "array"])
def test_submit_whose_body_is_not_a_json_object_is_an_invalid_request(
    farm: httpx.Client, raw: bytes
) -> None:
    response = farm.post("/v1/renders", content=raw, headers={"Content-Type": "application/json"})

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_request")


def test_rejected_submit_creates_no_render(farm: httpx.Client) -> None:
    submit(farm, duration_seconds="five")

    assert render_ids(farm) == []


def test_repeated_idempotency_key_returns_the_same_render_with_200(farm: httpx.Client) -> None:
    first = submit(farm, key="job-1")

    again = submit(farm, key="job-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


def test_repeated_idempotency_key_creates_no_second_render(farm: httpx.Client) -> None:
    first = submit(farm, key="job-1")

    submit(farm, key="job-1")

    assert render_ids(farm) == [first.json()["id"]]


def test_concurrent_submits_with_one_idempotency_key_create_one_render(
    farm: httpx.Client,
) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: submit(farm, key="job-1"), range(16)))

    assert sorted(r.status_code for r in responses) == [200] * 15 + [201]
    assert len(render_ids(farm)) == 1


def test_different_idempotency_keys_create_different_renders(farm: httpx.Client) -> None:
    submit(farm, key="job-1")

    submit(farm, key="job-2")

    assert len(set(render_ids(farm))) == 2


# -- polling: status follows elapsed time -----------------------------------------------------


def test_polling_an_unknown_render_is_not_found(farm: httpx.Client) -> None:
    response = poll(farm, "rnd_doesnotexist")

    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (0.0, "queued"),
        (1.9, "queued"),
        (2.0, "preparing"),
        (4.9, "preparing"),
        (5.0, "rendering"),
        (14.9, "rendering"),
        (15.0, "encoding"),
        (17.9, "encoding"),
        (18.0, "finishing"),
        (19.9, "finishing"),
        (20.0, "succeeded"),
        (3600.0, "succeeded"),
    ],
)
def test_status_follows_the_time_since_submission(
    farm: httpx.Client, clock: FakeClock, elapsed: float, expected: str
) -> None:
    render_id = a_render(farm)

    clock.advance(elapsed)

    assert status_of(farm, render_id) == expected


def test_progress_is_the_elapsed_fraction_of_the_render_time(
    farm: httpx.Client, clock: FakeClock
) -> None:
    render_id = a_render(farm)

    clock.advance(5.0)

    assert poll(farm, render_id).json()["progress"] == pytest.approx(0.25)


def test_eta_is_the_remaining_render_time(farm: httpx.Client, clock: FakeClock) -> None:
    render_id = a_render(farm)

    clock.advance(5.0)

    assert poll(farm, render_id).json()["eta_seconds"] == pytest.approx(15.0)


def test_progress_and_eta_settle_once_the_render_is_done(
    farm: httpx.Client, clock: FakeClock
) -> None:
    render_id = a_render(farm)

    clock.advance(3600.0)

    body = poll(farm, render_id).json()
    assert (body["progress"], body["eta_seconds"]) == (1.0, 0.0)


def test_unfinished_render_has_no_output_url(farm: httpx.Client, clock: FakeClock) -> None:
    render_id = a_render(farm)

    clock.advance(19.9)

    assert poll(farm, render_id).json()["output_url"] is None


def test_succeeded_render_links_its_output_on_the_host_it_was_polled_at(
    farm: httpx.Client, clock: FakeClock
) -> None:
    render_id = a_render(farm)
    clock.advance(RENDER_SECONDS)

    body = poll(farm, render_id).json()

    assert body["output_url"] == f"{base_url(farm)}/v1/outputs/{render_id}.mp4"


def test_output_url_is_built_from_the_host_header(farm: httpx.Client, clock: FakeClock) -> None:
    render_id = a_render(farm)
    clock.advance(RENDER_SECONDS)

    response = farm.get(f"/v1/renders/{render_id}", headers={"Host": "sim.internal:8090"})

    assert response.json()["output_url"] == f"http://sim.internal:8090/v1/outputs/{render_id}.mp4"


def test_with_zero_render_time_a_render_has_succeeded_by_the_first_poll(
    transport: httpx.HTTPTransport,
) -> None:
    with serve_wsgi(create_app(render_seconds=0)) as url:
        client = httpx.Client(base_url=url, transport=transport)

        assert status_of(client, a_render(client)) == "succeeded"


# -- downloading the output -------------------------------------------------------------------


@pytest.fixture
def finished_render(farm: httpx.Client, clock: FakeClock) -> str:
    render_id = a_render(farm)
    clock.advance(RENDER_SECONDS)
    return render_id


def test_output_of_a_succeeded_render_is_served_as_mp4(
    farm: httpx.Client, finished_render: str
) -> None:
    response = farm.get(f"/v1/outputs/{finished_render}.mp4")

    assert (response.status_code, response.headers["Content-Type"]) == (200, "video/mp4")


def test_output_of_a_succeeded_render_is_a_real_mp4_file(
    farm: httpx.Client, finished_render: str
) -> None:
    video = farm.get(f"/v1/outputs/{finished_render}.mp4").content

    assert video[4:8] == b"ftyp"


def test_output_is_a_small_h264_video(farm: httpx.Client, finished_render: str) -> None:
    video = farm.get(f"/v1/outputs/{finished_render}.mp4").content

    assert b"avc1" in video
    assert len(video) < 50_000


def test_output_of_an_unfinished_render_is_not_found(farm: httpx.Client, clock: FakeClock) -> None:
    render_id = a_render(farm)
    clock.advance(19.9)

    response = farm.get(f"/v1/outputs/{render_id}.mp4")

    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_output_of_an_unknown_render_is_not_found(farm: httpx.Client) -> None:
    response = farm.get("/v1/outputs/rnd_doesnotexist.mp4")

    assert response.status_code == 404


# -- faults on submit -------------------------------------------------------------------------


def test_submit_fault_answers_with_the_injected_status_and_code(farm: httpx.Client) -> None:
    a_fault(farm, on="submit", status=429, code="rate_limited")

    response = submit(farm)

    assert (response.status_code, response.json()["error"]["code"]) == (429, "rate_limited")


def test_submit_fault_sends_retry_after_when_given(farm: httpx.Client) -> None:
    a_fault(farm, on="submit", status=429, code="rate_limited", retry_after=7)

    response = submit(farm)

    assert response.headers["Retry-After"] == "7"


def test_submit_fault_sends_no_retry_after_unless_given(farm: httpx.Client) -> None:
    a_fault(farm, on="submit", status=503, code="capacity_exhausted")

    response = submit(farm)

    assert "Retry-After" not in response.headers


def test_faulted_submit_creates_no_render(farm: httpx.Client) -> None:
    a_fault(farm, on="submit", status=500, code="internal_error")

    submit(farm)

    assert render_ids(farm) == []


def test_retrying_a_faulted_submit_with_its_idempotency_key_creates_the_render(
    farm: httpx.Client,
) -> None:
    a_fault(farm, on="submit", status=502, code="bad_gateway")
    submit(farm, key="job-1")

    retry = submit(farm, key="job-1")

    assert retry.status_code == 201


def test_fault_applies_as_many_times_as_asked_then_service_resumes(farm: httpx.Client) -> None:
    a_fault(farm, on="submit", status=503, code="capacity_exhausted", times=2)

    statuses = [submit(farm).status_code for _ in range(3)]

    assert statuses == [503, 503, 201]


def test_faults_are_applied_in_the_order_they_were_injected(farm: httpx.Client) -> None:
    a_fault(farm, on="submit", status=429, code="rate_limited")
    a_fault(farm, on="submit", status=504, code="gateway_timeout")

    statuses = [submit(farm).status_code for _ in range(2)]

    assert statuses == [429, 504]


def test_model_scoped_fault_spares_other_models(farm: httpx.Client) -> None:
    a_fault(farm, on="submit", status=429, code="rate_limited", model="veo-sim")

    statuses = [submit(farm, model=model).status_code for model in ("kling-sim", "veo-sim")]

    assert statuses == [201, 429]


# -- faults on poll ---------------------------------------------------------------------------


def test_poll_fault_answers_with_the_injected_status_and_code(farm: httpx.Client) -> None:
    render_id = a_render(farm)
    a_fault(farm, on="poll", status=500, code="internal_error")

    response = poll(farm, render_id)

    assert (response.status_code, response.json()["error"]["code"]) == (500, "internal_error")


def test_poll_fault_is_transient(farm: httpx.Client) -> None:
    render_id = a_render(farm)
    a_fault(farm, on="poll", status=503, code="capacity_exhausted")
    poll(farm, render_id)

    response = poll(farm, render_id)

    assert (response.status_code, response.json()["id"]) == (200, render_id)


def test_poll_fault_does_not_spoil_submits(farm: httpx.Client) -> None:
    a_fault(farm, on="poll", status=503, code="capacity_exhausted")

    response = submit(farm)

    assert response.status_code == 201


# -- faults on the render itself --------------------------------------------------------------


def test_render_fault_fails_the_render_when_it_reaches_rendering(
    farm: httpx.Client, clock: FakeClock
) -> None:
    a_fault(farm, on="render", code="capacity_exhausted")
    render_id = a_render(farm)

    statuses = []
    for elapsed in (4.9, 0.1):
        clock.advance(elapsed)
        statuses.append(status_of(farm, render_id))

    assert statuses == ["preparing", "failed"]


def test_render_fault_can_strike_at_a_chosen_phase(farm: httpx.Client, clock: FakeClock) -> None:
    a_fault(farm, on="render", code="content_policy", at_phase="encoding")
    render_id = a_render(farm)

    statuses = []
    for elapsed in (14.9, 0.1):
        clock.advance(elapsed)
        statuses.append(status_of(farm, render_id))

    assert statuses == ["rendering", "failed"]


def test_failed_render_reports_the_injected_error_code(
    farm: httpx.Client, clock: FakeClock
) -> None:
    a_fault(farm, on="render", code="content_policy")
    render_id = a_render(farm)
    clock.advance(RENDER_SECONDS)

    error = poll(farm, render_id).json()["error"]

    assert error["code"] == "content_policy"
    assert error["message"]


def test_failed_render_stays_failed_without_an_output(farm: httpx.Client, clock: FakeClock) -> None:
    a_fault(farm, on="render", code="capacity_exhausted")
    render_id = a_render(farm)
    clock.advance(3600.0)

    body = poll(farm, render_id).json()

    assert (body["status"], body["output_url"]) == ("failed", None)


def test_failed_render_has_nothing_to_download(farm: httpx.Client, clock: FakeClock) -> None:
    a_fault(farm, on="render", code="capacity_exhausted")
    render_id = a_render(farm)
    clock.advance(RENDER_SECONDS)

    response = farm.get(f"/v1/outputs/{render_id}.mp4")

    assert response.status_code == 404


def test_render_fault_dooms_only_as_many_renders_as_asked(
    farm: httpx.Client, clock: FakeClock
) -> None:
    a_fault(farm, on="render", code="capacity_exhausted", times=2)
    render_ids_ = [a_render(farm) for _ in range(3)]

    clock.advance(RENDER_SECONDS)

    assert [status_of(farm, rid) for rid in render_ids_] == ["failed", "failed", "succeeded"]


def test_model_scoped_render_fault_spares_other_models(
    farm: httpx.Client, clock: FakeClock
) -> None:
    a_fault(farm, on="render", code="content_policy", model="veo-sim")
    spared = a_render(farm, model="kling-sim")
    doomed = a_render(farm, model="veo-sim")

    clock.advance(RENDER_SECONDS)

    assert [status_of(farm, spared), status_of(farm, doomed)] == ["succeeded", "failed"]


def test_render_fault_does_not_spoil_requests(farm: httpx.Client) -> None:
    a_fault(farm, on="render", code="capacity_exhausted")

    render_id = a_render(farm)

    assert poll(farm, render_id).status_code == 200


# -- managing faults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"on": "deploy", "status": 500, "code": "internal_error"},
        {"on": "submit", "code": "internal_error"},
        {"on": "submit", "status": 200, "code": "ok"},
        {"on": "poll", "status": 503, "code": "capacity_exhausted", "times": 0},
        {"on": "render", "code": "content_policy", "at_phase": "succeeded"},
        {"on": "submit", "status": 429, "code": "rate_limited", "time": 2},
    ],
    ids=[
        "unknown-target",
        "no-status",
        "success-status",
        "zero-times",
        "phase-after-done",
        "misspelt-key",
    ],
)
def test_an_invalid_fault_rule_is_rejected(farm: httpx.Client, rule: dict[str, Any]) -> None:
    response = farm.post("/_sim/faults", json=rule)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "rate_limited"), (503, "capacity_exhausted"), (500, "internal_error")],
)
def test_a_fault_without_a_code_answers_the_usual_one_for_its_status(
    farm: httpx.Client, status: int, code: str
) -> None:
    a_fault(farm, on="poll", status=status)
    render_id = a_render(farm)

    response = poll(farm, render_id)

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


def test_clearing_faults_restores_normal_service(farm: httpx.Client) -> None:
    a_fault(farm, on="submit", status=503, code="capacity_exhausted", times=5)

    cleared = farm.delete("/_sim/faults")

    assert (cleared.status_code, submit(farm).status_code) == (204, 201)


# -- inspection and reset ---------------------------------------------------------------------


def test_sim_renders_lists_every_render_in_creation_order(farm: httpx.Client) -> None:
    created = [a_render(farm) for _ in range(3)]

    assert render_ids(farm) == created


def test_stats_count_every_submit_and_poll_including_faulted_ones(farm: httpx.Client) -> None:
    a_fault(farm, on="submit", status=429, code="rate_limited")
    a_fault(farm, on="poll", status=503, code="capacity_exhausted")
    submit(farm)
    render_id = a_render(farm)
    for _ in range(3):
        poll(farm, render_id)

    assert farm.get("/_sim/stats").json() == {"submits": 2, "polls": 3}


def test_reset_forgets_every_render(farm: httpx.Client) -> None:
    render_id = a_render(farm)

    farm.post("/_sim/reset")

    assert poll(farm, render_id).status_code == 404


def test_reset_forgets_fault_rules(farm: httpx.Client) -> None:
    a_fault(farm, on="submit", status=503, code="capacity_exhausted")

    farm.post("/_sim/reset")

    assert submit(farm).status_code == 201


def test_reset_zeroes_the_counters(farm: httpx.Client) -> None:
    poll(farm, a_render(farm))

    farm.post("/_sim/reset")

    assert farm.get("/_sim/stats").json() == {"submits": 0, "polls": 0}


# -- the gunicorn entry point -----------------------------------------------------------------


def test_gunicorn_app_takes_the_render_time_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, transport: httpx.HTTPTransport
) -> None:
    monkeypatch.setenv(RENDER_SECONDS_ENV, "0")

    with serve_wsgi(gunicorn_app()) as url:
        client = httpx.Client(base_url=url, transport=transport)
        assert status_of(client, a_render(client)) == "succeeded"


def test_gunicorn_app_renders_take_a_while_by_default(
    monkeypatch: pytest.MonkeyPatch, transport: httpx.HTTPTransport
) -> None:
    monkeypatch.delenv(RENDER_SECONDS_ENV, raising=False)

    with serve_wsgi(gunicorn_app()) as url:
        client = httpx.Client(base_url=url, transport=transport)
        assert status_of(client, a_render(client)) == "queued"


def test_gunicorn_app_refuses_a_render_time_that_is_not_a_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(RENDER_SECONDS_ENV, "twenty")

    with pytest.raises(ValueError, match=RENDER_SECONDS_ENV):
        gunicorn_app()
