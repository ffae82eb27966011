"""Luma AI's Dream Machine API, as the simulator speaks it (under ``/luma/dream-machine/v1``).

Faithful (per lumalabs/lumaai-python c00ac17 ``types/generation.py`` and
``types/generations/video_create_params.py``, and docs.lumalabs.ai ``/docs/errors``,
``/docs/rate-limits`` and the "Callbacks & Credits Balance" changelog):

- ``POST /generations/video`` with a bearer key; ``model`` one of ``ray-1-6``, ``ray-2``,
  ``ray-flash-2``; ``duration`` a *string* (``"5s"``/``"9s"``); ``keyframes.frame0/frame1``
  each ``{"type": "image", "url"}`` or ``{"type": "generation", "id"}``; the documented 400
  messages ("Prompt is too short, minimum length is 3 characters", "No keyframes provided",
  the loop/keyframe conflicts) in a ``{"detail": "..."}`` body.
- ``GET /generations/{id}`` answers the Generation object: a UUID ``id``, ``state`` in
  ``queued`` → ``dreaming`` → ``completed`` | ``failed`` with ``failure_reason``, the video
  under ``assets.video``, the create body echoed under ``request``. No progress number.
- Moderation happens *after* submission: a content-policy fault on the create call still
  answers 201, and the generation then reads ``failed`` / "Contains blacklisted words".
- Callbacks: the Generation object is POSTed to ``callback_url`` when the generation is
  dreaming, completed or failed; unsigned. ``GET /credits`` answers ``credit_balance``.

Render faults end ``failed``: ``content_policy`` with "Advanced prompt moderation failed"
(documented), ``internal`` and ``capacity`` with a "Job failed: …" reason naming the cause
[I: Dream Machine documents no wording for its own trouble], any other with "Job failed".

Inferred [I] (Dream Machine documents no HTTP codes beyond its 400 messages): 201 on create;
401 ``Invalid API key``; 402 for missing credits, 429 for both the per-minute limit and the
concurrent-generations cap (told apart by their text), following the newer Luma Agents API
(docs.agents.lumalabs.ai error-handling), whose errors also carry ``detail``; a wrongly
typed field answers FastAPI's 422 with a list under ``detail``; a 500 is plain text.

Simplified: no ``DELETE``, list, upscale, audio, modify or reframe endpoints; ``loop``,
``resolution`` and ``concepts`` are checked or ignored but change nothing; Luma's three
retries of a callback not answered with 200 are left to the shared dispatcher, which sends
once.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import falcon
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.simulator import credentials
from backend.simulator.callbacks import CallbackBuilder, CallbackDispatcher, OutgoingCallback
from backend.simulator.dialects.common import (
    BadBody,
    bearer,
    describe_image,
    hang,
    origin,
    output_url,
    read_json,
    take_fault,
)
from backend.simulator.farm import (
    FaultKind,
    FaultRule,
    FaultTarget,
    Phase,
    RenderFarm,
    RenderSnapshot,
    RenderSpec,
)

NAME = "luma"
PREFIX = credentials.PREFIXES[NAME]
BASE = PREFIX + "/dream-machine/v1"

#: The balance the credits endpoint reports, in USD cents.
CREDIT_BALANCE_CENTS = 100_000.0
DURATIONS = {"5s": 5, "9s": 9}
RESOLUTIONS = ("540p", "720p", "1080p", "4k")
PROMPT_MIN_CHARS, PROMPT_MAX_CHARS = 3, 5000

BLACKLISTED = "Contains blacklisted words"
PROMPT_MODERATED = "Advanced prompt moderation failed"
JOB_FAILED = "Job failed"
#: ``failure_reason`` of a render fault of each kind; a rule without one reads JOB_FAILED.
_RENDER_FAILURES = {
    FaultKind.CONTENT_POLICY: PROMPT_MODERATED,
    FaultKind.INTERNAL: "Job failed: internal server error",
    FaultKind.CAPACITY: "Job failed: no capacity available, servers overloaded",
}

#: How each fault kind is answered: HTTP status and ``detail`` text (see module docstring).
_FAULT_ANSWERS: dict[FaultKind, tuple[int, str]] = {
    FaultKind.RATE_LIMITED: (429, "Rate limit exceeded: too many create requests per minute"),
    FaultKind.CAPACITY: (429, "Too many concurrent generations, wait for one to finish"),
    FaultKind.QUOTA: (402, "Insufficient credits, please top up your balance"),
    FaultKind.AUTH: (401, "Invalid API key"),
    FaultKind.SERVER_ERROR: (500, "Internal Server Error"),
    FaultKind.UNAVAILABLE: (503, "Service Unavailable"),
    FaultKind.BAD_REQUEST: (400, "Unknown request type"),
    FaultKind.CONTENT_POLICY: (400, BLACKLISTED),
    FaultKind.HANG: (504, "Gateway Timeout"),
    FaultKind.INTERNAL: (500, "Internal Server Error"),
}


# -- the create body, as the SDK types it ------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", protected_namespaces=())


class _ImageFrame(_Strict):
    type: Literal["image"]
    url: str


class _GenerationFrame(_Strict):
    type: Literal["generation"]
    id: str


_Frame = Annotated[_ImageFrame | _GenerationFrame, Field(discriminator="type")]


class _Keyframes(_Strict):
    frame0: _Frame | None = None
    frame1: _Frame | None = None


class _CreateBody(_Strict):
    model: Literal["ray-1-6", "ray-2", "ray-flash-2"]
    prompt: str | None = None
    aspect_ratio: Literal["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"] = "16:9"
    duration: str = "5s"
    resolution: str = "720p"
    loop: bool = False
    keyframes: _Keyframes | None = None
    callback_url: str | None = None
    generation_type: Literal["video"] = "video"


class _Invalid(Exception):
    """A create body Luma refuses; ``detail`` is a message or FastAPI's list of errors."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def _parse_create(body: dict[str, Any]) -> _CreateBody:
    try:
        create = _CreateBody.model_validate(body)
    except ValidationError as exc:
        raise _Invalid(422, _fastapi_errors(exc)) from None
    if create.duration not in DURATIONS:
        raise _Invalid(400, f"Invalid duration {create.duration!r}, expected one of 5s, 9s")
    if create.resolution not in RESOLUTIONS:
        raise _Invalid(400, f"Invalid resolution {create.resolution!r}")
    _check_prompt_and_frames(create)
    return create


def _check_prompt_and_frames(create: _CreateBody) -> None:
    """The documented pre-submission messages (docs.lumalabs.ai/docs/errors)."""
    frames = create.keyframes
    if frames is not None and frames.frame0 is None and frames.frame1 is None:
        raise _Invalid(400, "No keyframes provided")
    if not create.prompt and frames is None:
        raise _Invalid(400, "Prompt is required")
    if create.prompt is not None and len(create.prompt) < PROMPT_MIN_CHARS:
        raise _Invalid(400, "Prompt is too short, minimum length is 3 characters")
    if create.prompt is not None and len(create.prompt) > PROMPT_MAX_CHARS:
        raise _Invalid(400, "Prompt is too long, maximum length is 5000 characters")
    if create.loop and frames is not None and frames.frame1 is not None:
        if frames.frame0 is not None:
            raise _Invalid(400, "Loop is not supported for keyframes")
        if isinstance(frames.frame1, _ImageFrame):
            raise _Invalid(400, "Loop is not supported for end frame")
        raise _Invalid(400, "Loop is not supported for extend reverse")


def _fastapi_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"], "input": e["input"]}
        for e in exc.errors(include_url=False)
    ]


def _describe_frame(frame: _ImageFrame | _GenerationFrame | None) -> str | None:
    if isinstance(frame, _GenerationFrame):
        return f"generation:{frame.id}"
    return None if frame is None else describe_image(frame.url)


# -- generations: Luma's UUIDs over the farm's renders -----------------------------------------


@dataclass(frozen=True)
class _Generation:
    id: str
    render_id: str
    #: The create body as received, echoed as ``Generation.request``.
    request: dict[str, Any]
    #: ``failure_reason`` of a generation refused by moderation right after submission.
    moderated: str | None = None


class _Generations:
    """Which render each generation id names (the farm's ids are not UUIDs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, _Generation] = {}
        self._by_render: dict[str, _Generation] = {}

    def add(self, render_id: str, request: dict[str, Any], moderated: str | None) -> _Generation:
        generation = _Generation(str(uuid.uuid4()), render_id, request, moderated)
        with self._lock:
            self._by_id[generation.id] = generation
            self._by_render[render_id] = generation
        return generation

    def get(self, generation_id: str) -> _Generation | None:
        with self._lock:
            return self._by_id.get(generation_id)

    def for_render(self, render_id: str) -> _Generation | None:
        with self._lock:
            return self._by_render.get(render_id)


def _luma_state(phase: Phase) -> str:
    if phase is Phase.QUEUED:
        return "queued"
    if phase is Phase.SUCCEEDED:
        return "completed"
    if phase in (Phase.FAILED, Phase.CANCELED):  # nothing cancels here; never reached
        return "failed"
    return "dreaming"


def _failure_reason(generation: _Generation, snapshot: RenderSnapshot) -> str | None:
    if generation.moderated:
        return generation.moderated
    if snapshot.status is Phase.FAILED:
        kind = snapshot.fault_kind
        return _RENDER_FAILURES.get(kind, JOB_FAILED) if kind else JOB_FAILED
    return None


def _generation_json(generation: _Generation, snapshot: RenderSnapshot) -> dict[str, Any]:
    state = "failed" if generation.moderated else _luma_state(snapshot.status)
    return {
        "id": generation.id,
        "generation_type": "video",
        "state": state,
        "failure_reason": _failure_reason(generation, snapshot),
        "created_at": snapshot.created_at.isoformat().replace("+00:00", "Z"),
        "assets": {"video": output_url(snapshot)} if state == "completed" else None,
        "model": snapshot.spec.model,
        "request": generation.request,
    }


# -- answers -----------------------------------------------------------------------------------


def _detail(
    resp: falcon.Response, status: int, detail: Any, retry_after: int | None = None
) -> None:
    resp.status = status
    resp.media = {"detail": detail}
    if retry_after is not None:
        resp.set_header("Retry-After", str(retry_after))


def _answer_fault(resp: falcon.Response, rule: FaultRule) -> None:
    if rule.kind is None or rule.kind not in _FAULT_ANSWERS:
        _detail(resp, rule.status or 500, rule.describe(), rule.retry_after)
        return
    status, text = _FAULT_ANSWERS[rule.kind]
    if rule.kind is FaultKind.SERVER_ERROR:  # the framework's own page, not an envelope
        resp.status = status
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = text
        return
    _detail(resp, status, rule.message or text, rule.retry_after)


def _authorized(req: falcon.Request, resp: falcon.Response) -> bool:
    if bearer(req) == credentials.LUMA_API_KEY:
        return True
    _detail(resp, 401, "Invalid API key")
    return False


# -- resources ---------------------------------------------------------------------------------


class _VideoGenerationsResource:
    """``POST /generations/video``."""

    def __init__(
        self, farm: RenderFarm, callbacks: CallbackDispatcher, generations: _Generations
    ) -> None:
        self._farm = farm
        self._callbacks = callbacks
        self._generations = generations

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._farm.count_submit()
        if not _authorized(req, resp):
            return
        try:
            body = read_json(req)
        except BadBody as exc:
            _detail(resp, 422, [{"type": "json_invalid", "loc": ["body"], "msg": str(exc)}])
            return
        model = body.get("model") if isinstance(body.get("model"), str) else None
        rule = take_fault(self._farm, FaultTarget.SUBMIT, model, NAME)
        if rule is not None and rule.kind not in (
            FaultKind.CONTENT_POLICY,
            FaultKind.HANG_AFTER_CREATE,
        ):
            _answer_fault(resp, rule)
            return
        try:
            create = _parse_create(body)
        except _Invalid as exc:
            _detail(resp, exc.status, exc.detail)
            return
        moderated = (
            BLACKLISTED if rule is not None and rule.kind is FaultKind.CONTENT_POLICY else None
        )
        generation, snapshot = self._create(req, body, create, moderated)
        if rule is not None and rule.kind is FaultKind.HANG_AFTER_CREATE:
            hang(rule)
        resp.status = 201
        # Moderation runs after the create call answers: the 201 still says "queued".
        resp.media = _generation_json(replace(generation, moderated=None), snapshot)

    def _create(
        self, req: falcon.Request, body: dict[str, Any], create: _CreateBody, moderated: str | None
    ) -> tuple[_Generation, RenderSnapshot]:
        frames = create.keyframes or _Keyframes()
        spec = RenderSpec(
            model=create.model,
            prompt=create.prompt or "",
            duration_seconds=DURATIONS[create.duration],
            aspect_ratio=create.aspect_ratio,
            image=_describe_frame(frames.frame0),
            end_image=_describe_frame(frames.frame1),
            dialect=NAME,
            callback_url=create.callback_url,
            origin=origin(req),
        )
        snapshot, _ = self._farm.submit(spec)
        generation = self._generations.add(snapshot.id, body, moderated)
        if create.callback_url:
            self._callbacks.watch(snapshot.id)
        return generation, snapshot


class _GenerationResource:
    """``GET /generations/{id}``."""

    def __init__(self, farm: RenderFarm, generations: _Generations) -> None:
        self._farm = farm
        self._generations = generations

    def on_get(self, req: falcon.Request, resp: falcon.Response, generation_id: str) -> None:
        self._farm.count_poll()
        if not _authorized(req, resp):
            return
        generation = self._generations.get(generation_id)
        snapshot = None if generation is None else self._farm.get(generation.render_id)
        model = None if snapshot is None else snapshot.spec.model
        rule = take_fault(self._farm, FaultTarget.POLL, model, NAME)
        if rule is not None:
            _answer_fault(resp, rule)
        elif generation is None or snapshot is None:
            _detail(resp, 404, "Generation not found")
        else:
            resp.media = _generation_json(generation, snapshot)


class _CreditsResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if _authorized(req, resp):
            resp.media = {"credit_balance": CREDIT_BALANCE_CENTS}


def _callback_builder(generations: _Generations) -> CallbackBuilder:
    def build(snapshot: RenderSnapshot, previous: Phase | None) -> OutgoingCallback | None:
        """The Generation object, when it becomes dreaming, completed or failed."""
        generation = generations.for_render(snapshot.id)
        url = snapshot.spec.callback_url
        if generation is None or not url:
            return None
        if generation.moderated:  # failed at once: told at the first change, then never again
            send = previous in (None, Phase.QUEUED)
        else:
            state = _luma_state(snapshot.status)
            send = state != "queued" and (previous is None or state != _luma_state(previous))
        if not send:
            return None
        body = json.dumps(_generation_json(generation, snapshot)).encode()
        return OutgoingCallback(url=url, body=body)

    return build


def mount(app: falcon.App, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
    generations = _Generations()
    app.add_route(
        BASE + "/generations/video", _VideoGenerationsResource(farm, callbacks, generations)
    )
    app.add_route(BASE + "/generations/{generation_id}", _GenerationResource(farm, generations))
    app.add_route(BASE + "/credits", _CreditsResource())
    callbacks.register(NAME, _callback_builder(generations))
