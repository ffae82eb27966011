"""MiniMax's video generation API (v1), as the simulator speaks it (see
``backend/providers/minimax.py`` for the sources).

Faithful: the paths (create, query, files/retrieve, files/list); the bearer key; business
errors as **HTTP 200** with ``base_resp {status_code, status_msg}`` (1002 rate limit, 1004
login fail, 1008 balance, 1026 sensitive input, 2013 invalid params, 2049 invalid key…); an
integer ``duration`` of 6 or 10 (10 s not at 1080P), ``resolution`` strings, a prompt of at
most 2000 characters, first/last frames as a public URL or a base64 ``data:`` URL, the last
frame for MiniMax-Hailuo-02 only; statuses ``Preparing → Queueing → Processing → Success |
Fail`` with ``file_id`` and the download link behind ``/v1/files/retrieve``; and the
callback handshake: a ``callback_url`` gets ``{"challenge": …}`` POSTed while the task is
created, which fails unless the same challenge is echoed within 3 s. Status updates
follow, unsigned, with the lowercase ``processing | success | failed`` of MiniMax's
callback docs.
Simplified [I]: ids are the farm's (MiniMax's are decimal strings); a failed task carries
its reason in ``base_resp`` (1027 for moderated output, 1041 "conn limit" for a ``capacity``
render fault, 1024 "internal error" for ``internal``, 1000 otherwise); the error a failed
challenge gives (2013), the answer for an unknown task or file (2013), the capacity code
(1041 "conn limit") and an outage as a bare 503 page are guesses; videos are 1366x768
whatever the resolution or first frame; the file list is always empty.
"""

from __future__ import annotations

import functools
import json
import uuid
from importlib import resources
from typing import Any

import falcon
import httpx

from backend.simulator import credentials
from backend.simulator.callbacks import CallbackDispatcher, OutgoingCallback
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

NAME = "minimax"
PREFIX = credentials.PREFIXES[NAME]

MODELS = {
    "MiniMax-Hailuo-2.3",
    "MiniMax-Hailuo-2.3-Fast",
    "MiniMax-Hailuo-02",
    "T2V-01-Director",
    "T2V-01",
    "I2V-01-Director",
    "I2V-01-live",
    "I2V-01",
    "S2V-01",
}
LAST_FRAME_MODELS = {"MiniMax-Hailuo-02"}
DURATIONS = {6, 10}
RESOLUTIONS = {"512P", "720P", "768P", "1080P"}
MAX_PROMPT_CHARS = 2000
CHALLENGE_TIMEOUT_SECONDS = 3.0
FILE_PURPOSES = {"voice_clone", "prompt_audio", "t2a_async_input"}
FILE_PREFIX = "file_"
VIDEO_SIZE = (1366, 768)

LOGIN_FAIL = (
    "login fail: Please carry the API secret key in the 'Authorization' field of the request header"
)
#: (HTTP status, base_resp code, message) for each fault kind; None code: a gateway page.
_FAULTS: dict[FaultKind, tuple[int, int | None, str]] = {
    FaultKind.RATE_LIMITED: (200, 1002, "rate limit"),
    FaultKind.CAPACITY: (200, 1041, "conn limit"),
    FaultKind.QUOTA: (200, 1008, "insufficient balance"),
    FaultKind.AUTH: (200, 1004, LOGIN_FAIL),
    FaultKind.SERVER_ERROR: (200, 1000, "unknown error"),
    FaultKind.UNAVAILABLE: (503, None, "503 Service Temporarily Unavailable"),
    FaultKind.BAD_REQUEST: (200, 2013, "invalid params"),
    FaultKind.CONTENT_POLICY: (200, 1026, "input new_sensitive"),
    FaultKind.HANG: (200, 1001, "request timeout"),
    FaultKind.INTERNAL: (200, 1000, "unknown error"),
}
#: The code a rule given only an HTTP status answers with.
_STATUS_CODES = {400: 2013, 401: 1004, 402: 1008, 429: 1002, 503: 1041, 504: 1001}

# MiniMax reports Preparing before Queueing; the farm queues first, so its two waiting
# phases are named in MiniMax's order.
_STATUSES = {
    Phase.QUEUED: "Preparing",
    Phase.PREPARING: "Queueing",
    Phase.RENDERING: "Processing",
    Phase.ENCODING: "Processing",
    Phase.FINISHING: "Processing",
    Phase.SUCCEEDED: "Success",
    Phase.FAILED: "Fail",
    Phase.CANCELED: "Fail",
}
_CALLBACK_STATUSES = {"Processing": "processing", "Success": "success", "Fail": "failed"}
_OK = {"status_code": 0, "status_msg": "success"}


class MiniMaxError(Exception):
    """An answer in MiniMax's error shape: HTTP ``status`` (200 for business errors) and
    ``base_resp`` ``code``, or a bare gateway page when ``code`` is None."""

    def __init__(
        self, status: int, code: int | None, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def _invalid(message: str) -> MiniMaxError:
    return MiniMaxError(200, 2013, f"invalid params, {message}")


def mount(app: falcon.App, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
    api = _Api(farm, callbacks)
    app.add_route(f"{PREFIX}/v1/video_generation", api, suffix="create")
    app.add_route(f"{PREFIX}/v1/query/video_generation", api, suffix="query")
    app.add_route(f"{PREFIX}/v1/files/retrieve", api, suffix="file")
    app.add_route(f"{PREFIX}/v1/files/list", api, suffix="files")
    callbacks.register(NAME, _callback)


class _Api:
    def __init__(self, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
        self._farm = farm
        self._callbacks = callbacks

    def on_post_create(self, req: falcon.Request, resp: falcon.Response) -> None:
        _answer(resp, lambda: self._create(req))

    def on_get_query(self, req: falcon.Request, resp: falcon.Response) -> None:
        _answer(resp, lambda: self._query(req))

    def on_get_file(self, req: falcon.Request, resp: falcon.Response) -> None:
        _answer(resp, lambda: self._file(req))

    def on_get_files(self, req: falcon.Request, resp: falcon.Response) -> None:
        _answer(resp, lambda: _files(req))

    def _create(self, req: falcon.Request) -> dict[str, Any]:
        _authenticate(req)
        self._farm.count_submit()
        try:
            body = read_json(req)
        except BadBody as exc:
            raise _invalid(str(exc)) from None
        model = body.get("model")
        rule = take_fault(self._farm, FaultTarget.SUBMIT, model, NAME)
        if rule is not None and rule.kind is not FaultKind.HANG_AFTER_CREATE:
            raise _fault_error(rule)
        spec = _spec(req, body)
        if spec.callback_url:
            _verify_callback_url(spec.callback_url)
        snapshot, _ = self._farm.submit(spec)
        if spec.callback_url:
            self._callbacks.watch(snapshot.id)
        if rule is not None:
            hang(rule)
        return {"task_id": snapshot.id}

    def _query(self, req: falcon.Request) -> dict[str, Any]:
        _authenticate(req)
        self._farm.count_poll()
        snapshot = self._mine(req.get_param("task_id") or "")
        model = snapshot.spec.model if snapshot else None
        rule = take_fault(self._farm, FaultTarget.POLL, model, NAME)
        if rule is not None and rule.kind is FaultKind.HANG_AFTER_CREATE:
            hang(rule)
        elif rule is not None:
            raise _fault_error(rule)
        if snapshot is None:
            raise _invalid("task not found")
        return _task(snapshot)

    def _file(self, req: falcon.Request) -> dict[str, Any]:
        _authenticate(req)
        file_id = req.get_param("file_id") or ""
        # A task id is not a file id: only ids handed out as ``file_id`` are found.
        found = file_id.startswith(FILE_PREFIX)
        snapshot = self._mine(file_id.removeprefix(FILE_PREFIX)) if found else None
        if snapshot is None or snapshot.status is not Phase.SUCCEEDED:
            raise _invalid("file not found")
        return {
            "file": {
                "file_id": file_id,
                "bytes": _sample_bytes(),
                "created_at": int(snapshot.created_at.timestamp()),
                "filename": "output.mp4",
                "purpose": "video_generation",
                "download_url": output_url(snapshot),
            }
        }

    def _mine(self, task_id: str) -> RenderSnapshot | None:
        snapshot = self._farm.get(task_id) if task_id else None
        return snapshot if snapshot is not None and snapshot.spec.dialect == NAME else None


def _answer(resp: falcon.Response, work: Any) -> None:
    try:
        data = work()
    except MiniMaxError as exc:
        resp.status = exc.status
        if exc.retry_after is not None:
            resp.set_header("Retry-After", str(exc.retry_after))
        if exc.code is None:  # a load balancer's page, not MiniMax's JSON
            resp.content_type = falcon.MEDIA_HTML
            resp.text = f"<html><body><h1>{exc.message}</h1></body></html>"
            return
        resp.media = {"base_resp": {"status_code": exc.code, "status_msg": exc.message}}
        return
    resp.media = {**data, "base_resp": data.get("base_resp", _OK)}


def _authenticate(req: falcon.Request) -> None:
    token = bearer(req)
    if token is None:
        raise MiniMaxError(200, 1004, LOGIN_FAIL)
    if token != credentials.MINIMAX_API_KEY:
        raise MiniMaxError(200, 2049, "invalid api key")


def _spec(req: falcon.Request, body: dict[str, Any]) -> RenderSpec:
    model = body.get("model")
    if model not in MODELS:
        raise _invalid(f"model {model!r} is not supported")
    first, last = _image(body, "first_frame_image"), _image(body, "last_frame_image")
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str) or not (prompt.strip() or first):
        raise _invalid("prompt must be a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise _invalid(f"prompt must be at most {MAX_PROMPT_CHARS} characters")
    if not isinstance(body.get("prompt_optimizer", True), bool):
        raise _invalid("prompt_optimizer must be a boolean")
    duration = body.get("duration", 6)
    if type(duration) is not int or duration not in DURATIONS:
        raise _invalid("duration must be the integer 6 or 10")
    resolution = body.get("resolution", "768P")
    if resolution not in RESOLUTIONS:
        raise _invalid(f"resolution must be one of {', '.join(sorted(RESOLUTIONS))}")
    if resolution == "1080P" and duration != 6:
        raise _invalid("1080P supports 6 seconds only")
    if last and (not first or model not in LAST_FRAME_MODELS or resolution == "512P"):
        raise _invalid("last_frame_image needs first_frame_image, MiniMax-Hailuo-02, 768P+")
    callback_url = body.get("callback_url")
    if callback_url is not None and not isinstance(callback_url, str):
        raise _invalid("callback_url must be a string")
    return RenderSpec(
        model=model,
        prompt=prompt,
        duration_seconds=duration,
        aspect_ratio="first_frame" if first else "16:9",
        image=describe_image(first),
        end_image=describe_image(last),
        dialect=NAME,
        callback_url=callback_url or None,
        origin=origin(req),
    )


def _image(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return value
    if isinstance(value, str) and value.startswith("data:image/") and ";base64," in value:
        return value
    raise _invalid(f"{field} must be a public URL or a base64 data URL")


def _verify_callback_url(url: str) -> None:
    """MiniMax's URL check: the challenge must come back within 3 s, or no task."""
    challenge = str(uuid.uuid4())
    echoed = None
    try:
        answer = httpx.post(
            url, json={"challenge": challenge}, timeout=CHALLENGE_TIMEOUT_SECONDS, trust_env=False
        )
        body = answer.json() if answer.is_success else None
        echoed = body.get("challenge") if isinstance(body, dict) else None
    except (httpx.HTTPError, ValueError):
        pass
    if echoed != challenge:
        raise _invalid("callback_url verification failed: the challenge was not echoed")


def _files(req: falcon.Request) -> dict[str, Any]:
    _authenticate(req)
    if req.get_param("purpose") not in FILE_PURPOSES:
        raise _invalid(f"purpose must be one of {', '.join(sorted(FILE_PURPOSES))}")
    return {"files": []}


def _task(snapshot: RenderSnapshot) -> dict[str, Any]:
    status = _STATUSES[snapshot.status]
    task: dict[str, Any] = {"task_id": snapshot.id, "status": status, "file_id": ""}
    if status == "Success":
        width, height = VIDEO_SIZE
        task.update(file_id=FILE_PREFIX + snapshot.id, video_width=width, video_height=height)
    if status == "Fail":
        code, message = _failure(snapshot)
        task["base_resp"] = {"status_code": code, "status_msg": message}
    return task


#: ``base_resp`` of a task that failed of a render fault of each kind.
_RENDER_FAILURES: dict[FaultKind, tuple[int, str]] = {
    FaultKind.CONTENT_POLICY: (1027, "output new_sensitive"),
    FaultKind.CAPACITY: (1041, "conn limit"),
    FaultKind.INTERNAL: (1024, "internal error"),
}


def _failure(snapshot: RenderSnapshot) -> tuple[int, str]:
    if snapshot.fault_kind is not None and snapshot.fault_kind in _RENDER_FAILURES:
        return _RENDER_FAILURES[snapshot.fault_kind]
    if snapshot.status is Phase.CANCELED:
        return 1000, "task canceled"
    return 1000, snapshot.error.message if snapshot.error else "unknown error"


def _fault_error(rule: FaultRule) -> MiniMaxError:
    if rule.kind is not None and rule.kind in _FAULTS:
        status, code, message = _FAULTS[rule.kind]
        return MiniMaxError(rule.status or status, code, rule.message or message, rule.retry_after)
    status = rule.status or 500
    return MiniMaxError(status, _STATUS_CODES.get(status, 1000), rule.describe(), rule.retry_after)


def _callback(snapshot: RenderSnapshot, previous: Phase | None) -> OutgoingCallback | None:
    """MiniMax pushes processing, success and failed; the query's shape minus the size."""
    if snapshot.spec.callback_url is None:
        return None
    status = _CALLBACK_STATUSES.get(_STATUSES[snapshot.status])
    before = _CALLBACK_STATUSES.get(_STATUSES[previous]) if previous else None
    if status is None or status == before:
        return None
    body = _task(snapshot)
    body.pop("video_width", None)
    body.pop("video_height", None)
    body["status"] = status
    body.setdefault("base_resp", _OK)
    return OutgoingCallback(snapshot.spec.callback_url, json.dumps(body).encode())


@functools.cache
def _sample_bytes() -> int:
    asset = resources.files("backend.simulator").joinpath("assets").joinpath("sample.mp4")
    return len(asset.read_bytes())
