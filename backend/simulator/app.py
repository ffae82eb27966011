"""HTTP face of the simulated render farm (Falcon, WSGI).

genhook's workers talk to this exactly as they would to a real video provider, so the whole
pipeline (submit, poll, download, retries on throttling and outages) runs against real sockets in
tests and demos. The `/_sim/*` routes are the back door tests use to inject faults and inspect
what the farm saw; a real provider has nothing like them. They answer only requests bearing
the operator's control token (`Authorization: Bearer <token>`, compared in constant time):
under `genhook up` the simulator listens on loopback, where a tenant's webhook could
otherwise reset the farm or fail another tenant's render.

Run it with gunicorn, as ONE process (threads are fine): the farm lives in memory, so several
worker processes would each invent their own renders and answer 404 for each other's::

    gunicorn --workers 1 --threads 8 'backend.simulator.app:gunicorn_app()'
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from backend.simulator import dialects
from backend.simulator.callbacks import CallbackDispatcher
from backend.simulator.dialects.common import download_fault, sample_video
from backend.simulator.farm import (
    FAILABLE_PHASES,
    FaultKind,
    FaultRule,
    FaultTarget,
    Phase,
    RenderFarm,
    RenderSnapshot,
    RenderSpec,
)

RENDER_SECONDS_ENV = "GENHOOK_SIMULATOR_RENDER_SECONDS"
CONTROL_TOKEN_ENV = "GENHOOK_SIMULATOR_CONTROL_TOKEN"
#: The path prefix of the control routes.
CONTROL_PREFIX = "/_sim/"
DEFAULT_RENDER_SECONDS = 20.0

_Body = TypeVar("_Body", bound=BaseModel)


# -- request bodies ---------------------------------------------------------------------------


class _RenderRequest(BaseModel):
    # Strict: a provider that silently turned "5" into 5 would hide client bugs.
    model_config = ConfigDict(strict=True, extra="ignore", protected_namespaces=())

    model: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    duration_seconds: int = Field(gt=0)
    aspect_ratio: str = Field(min_length=1)


#: The native protocol's answer to each fault kind (dialects have their own).
_KIND_STATUS = {
    FaultKind.RATE_LIMITED: 429,
    FaultKind.CAPACITY: 503,
    FaultKind.QUOTA: 402,
    FaultKind.AUTH: 401,
    FaultKind.SERVER_ERROR: 500,
    FaultKind.UNAVAILABLE: 503,
    FaultKind.BAD_REQUEST: 400,
    FaultKind.CONTENT_POLICY: 400,
    FaultKind.HANG: 504,
    FaultKind.HANG_AFTER_CREATE: 504,
    FaultKind.INTERNAL: 500,
}

#: The error code a fault answers with when the rule names none.
_DEFAULT_FAULT_CODES = {429: "rate_limited", 503: "capacity_exhausted"}


class _FaultRequest(BaseModel):
    # Unknown keys are rejected so a typo ("time" for "times") fails loudly instead of
    # silently injecting a different fault than the test meant.
    model_config = ConfigDict(strict=True, extra="forbid", protected_namespaces=())

    on: FaultTarget
    code: str | None = Field(default=None, min_length=1)
    status: int | None = Field(default=None, ge=400, le=599)
    times: int = Field(default=1, ge=1)
    model: str | None = None
    retry_after: int | None = Field(default=None, ge=0)
    at_phase: Phase = Phase.RENDERING
    message: str | None = None
    kind: FaultKind | None = None
    dialect: str | None = None
    hang_seconds: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> _FaultRequest:
        if self.on is not FaultTarget.RENDER and self.status is None and self.kind is None:
            raise ValueError(
                "submit and poll faults need a 'status' (an HTTP 4xx/5xx code) or a 'kind'"
            )
        if self.code is None:
            self.code = self.kind.value if self.kind else None
        if self.code is None:
            self.code = _DEFAULT_FAULT_CODES.get(self.status or 0, "internal_error")
        if self.at_phase not in FAILABLE_PHASES:
            allowed = ", ".join(FAILABLE_PHASES)
            raise ValueError(f"'at_phase' must be one of: {allowed}")
        return self


class _InvalidRequest(Exception):
    """Raised while reading a request body; answered as 400 invalid_request."""


def _parse(req: falcon.Request, schema: type[_Body]) -> _Body:
    raw = req.bounded_stream.read()
    if not raw.strip():
        raise _InvalidRequest("the request body must be a JSON object")
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        problems = (
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise _InvalidRequest("; ".join(problems)) from exc


# -- responses --------------------------------------------------------------------------------


def _error(
    resp: falcon.Response, status: int, code: str, message: str, retry_after: int | None = None
) -> None:
    resp.status = status
    resp.media = {"error": {"code": code, "message": message}}
    if retry_after is not None:
        resp.set_header("Retry-After", str(retry_after))


def _fault(resp: falcon.Response, rule: FaultRule) -> None:
    # A dialect answers a kind with its provider's own status; these are the native ones.
    status = rule.status or _KIND_STATUS[rule.kind or FaultKind.INTERNAL]
    _error(resp, status, rule.code, rule.describe(), rule.retry_after)


def _not_found(resp: falcon.Response, render_id: str) -> None:
    _error(resp, 404, "not_found", f"no render with id {render_id!r}")


def _render_json(snapshot: RenderSnapshot, req: falcon.Request) -> dict[str, Any]:
    output_url = None
    if snapshot.status is Phase.SUCCEEDED:
        # Built from the incoming request so the URL works from wherever the client stands
        # (a test's ephemeral port, a docker network name, a demo's public host).
        host = req.get_header("Host") or req.netloc
        output_url = f"{req.scheme}://{host}/v1/outputs/{snapshot.id}.mp4"
    error = snapshot.error
    return {
        "id": snapshot.id,
        "model": snapshot.spec.model,
        "status": snapshot.status.value,
        "progress": round(snapshot.progress, 4),
        "eta_seconds": round(snapshot.eta_seconds, 3),
        "output_url": output_url,
        "error": None if error is None else {"code": error.code, "message": error.message},
        "created_at": snapshot.created_at.isoformat().replace("+00:00", "Z"),
        "queue_position": snapshot.queue_position,
    }


def _inspect_json(snapshot: RenderSnapshot, req: falcon.Request) -> dict[str, Any]:
    """A render as tests see it: the native shape plus what the client sent, in any dialect."""
    spec = snapshot.spec
    return {
        **_render_json(snapshot, req),
        "dialect": spec.dialect,
        "prompt": spec.prompt,
        "duration_seconds": spec.duration_seconds,
        "aspect_ratio": spec.aspect_ratio,
        "image": spec.image,
        "end_image": spec.end_image,
        "callback_url": spec.callback_url,
        "reference": spec.reference,
    }


def _fault_json(rule: FaultRule) -> dict[str, Any]:
    body: dict[str, Any] = {"on": rule.on.value, "code": rule.code, "times": rule.times}
    body["model"] = rule.model
    body["kind"] = rule.kind.value if rule.kind else None
    body["dialect"] = rule.dialect
    if rule.on is FaultTarget.RENDER:
        body["at_phase"] = rule.at_phase.value
    else:
        body["status"] = rule.status
        body["retry_after"] = rule.retry_after
    return body


# -- resources --------------------------------------------------------------------------------


class _Renders:
    """The provider API proper: submit and poll renders."""

    def __init__(self, farm: RenderFarm) -> None:
        self._farm = farm

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._farm.count_submit()
        body = _parse(req, _RenderRequest)
        fault = self._farm.take_request_fault(FaultTarget.SUBMIT, body.model)
        if fault is not None:
            _fault(resp, fault)  # like a real provider's gateway: nothing gets created
            return
        spec = RenderSpec(
            model=body.model,
            prompt=body.prompt,
            duration_seconds=body.duration_seconds,
            aspect_ratio=body.aspect_ratio,
        )
        snapshot, created = self._farm.submit(spec, req.get_header("Idempotency-Key") or None)
        resp.status = 201 if created else 200
        resp.media = _render_json(snapshot, req)

    def on_get_render(self, req: falcon.Request, resp: falcon.Response, render_id: str) -> None:
        self._farm.count_poll()
        snapshot = self._farm.get(render_id)
        model = None if snapshot is None else snapshot.spec.model
        fault = self._farm.take_request_fault(FaultTarget.POLL, model)
        if fault is not None:
            _fault(resp, fault)
        elif snapshot is None:
            _not_found(resp, render_id)
        else:
            resp.media = _render_json(snapshot, req)


class _Outputs:
    """Downloads of finished renders; all of them are the same small sample video."""

    def __init__(self, farm: RenderFarm, video: bytes) -> None:
        self._farm = farm
        self._video = video

    def on_get(self, req: falcon.Request, resp: falcon.Response, render_id: str) -> None:
        snapshot = self._farm.get(render_id)
        if snapshot is None or snapshot.status is not Phase.SUCCEEDED:
            _not_found(resp, render_id)
            return
        if download_fault(self._farm, snapshot, resp):
            return
        resp.content_type = "video/mp4"
        resp.data = self._video


class _Faults:
    """The fault list: tests push rules in, and clear them out."""

    def __init__(self, farm: RenderFarm) -> None:
        self._farm = farm

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _parse(req, _FaultRequest)
        rule = FaultRule(
            on=body.on,
            code=body.code or "internal_error",
            times=body.times,
            status=body.status,
            retry_after=body.retry_after,
            model=body.model,
            at_phase=body.at_phase,
            message=body.message,
            kind=body.kind,
            dialect=body.dialect,
            hang_seconds=body.hang_seconds,
        )
        self._farm.add_fault(rule)
        resp.status = 201
        resp.media = _fault_json(rule)

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._farm.clear_faults()
        resp.status = 204


class _Inspect:
    """Read-only and reset views of the farm, for tests and for debugging a demo."""

    def __init__(self, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
        self._farm = farm
        self._callbacks = callbacks

    def on_get_callbacks(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [sent.__dict__ for sent in self._callbacks.sent()]

    def on_get_renders(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = [_inspect_json(snapshot, req) for snapshot in self._farm.renders()]

    def on_get_stats(self, req: falcon.Request, resp: falcon.Response) -> None:
        stats = self._farm.stats()
        resp.media = {"submits": stats.submits, "polls": stats.polls}

    def on_post_reset(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._farm.reset()
        resp.status = 204


class _Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class _ControlToken:
    """Falcon middleware: the control routes need the operator's token; without a
    configured token they are off (403)."""

    def __init__(self, token: str | None) -> None:
        self._token = (token or "").encode()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not req.path.startswith(CONTROL_PREFIX):
            return
        if not self._token:
            raise _Refused(403, f"the control routes are off: set {CONTROL_TOKEN_ENV}")
        scheme, _, presented = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), self._token
        ):
            raise _Refused(401, "the control routes need 'Authorization: Bearer <token>'")


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _refused(
    req: falcon.Request, resp: falcon.Response, ex: BaseException, params: dict[str, Any]
) -> None:
    assert isinstance(ex, _Refused)
    _error(resp, ex.status, "unauthorized" if ex.status == 401 else "forbidden", str(ex))


def _invalid_request(
    req: falcon.Request, resp: falcon.Response, ex: BaseException, params: dict[str, Any]
) -> None:
    _error(resp, 400, "invalid_request", str(ex))


# -- assembly ---------------------------------------------------------------------------------


def create_app(
    *,
    render_seconds: float = DEFAULT_RENDER_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    control_token: str | None = None,
) -> falcon.App:
    """Build a fresh simulator with its own, empty farm.

    `render_seconds` is how long a render takes from submit to success; `clock` is where
    elapsed time comes from (inject a fake one to step through the phases deterministically);
    `control_token` opens the `/_sim/*` routes to requests bearing it (none: they are off).
    """
    farm = RenderFarm(render_seconds=render_seconds, clock=clock)
    app = falcon.App(middleware=[_ControlToken(control_token)])
    app.add_error_handler(_InvalidRequest, _invalid_request)
    app.add_error_handler(_Refused, _refused)

    renders = _Renders(farm)
    app.add_route("/v1/renders", renders)
    app.add_route("/v1/renders/{render_id}", renders, suffix="render")
    app.add_route("/v1/outputs/{render_id}.mp4", _Outputs(farm, sample_video()))

    callbacks = CallbackDispatcher(farm)
    app.add_route("/_sim/faults", _Faults(farm))
    inspect = _Inspect(farm, callbacks)
    app.add_route("/_sim/callbacks", inspect, suffix="callbacks")
    app.add_route("/_sim/renders", inspect, suffix="renders")
    app.add_route("/_sim/stats", inspect, suffix="stats")
    app.add_route("/_sim/reset", inspect, suffix="reset")

    app.add_route("/healthz", _Health())

    for dialect in dialects.ALL:
        dialect.mount(app, farm, callbacks)
    return app


def gunicorn_app() -> falcon.App:
    """Factory for gunicorn: ``gunicorn 'backend.simulator.app:gunicorn_app()'``."""
    # The simulator is a stand-in for a third-party provider, not part of genhook itself, so
    # it deliberately does not load genhook's settings; these two environment variables are
    # its knobs, read here at the process edge.
    raw = os.environ.get(RENDER_SECONDS_ENV, str(DEFAULT_RENDER_SECONDS))
    try:
        render_seconds = float(raw)
    except ValueError as exc:
        raise ValueError(f"{RENDER_SECONDS_ENV} must be a number of seconds, got {raw!r}") from exc
    return create_app(
        render_seconds=render_seconds, control_token=os.environ.get(CONTROL_TOKEN_ENV) or None
    )
