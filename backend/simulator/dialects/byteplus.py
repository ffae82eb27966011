"""BytePlus ModelArk's content generation tasks (Seedance), as the simulator speaks it.

Mirrors ``backend/providers/byteplus.py``. Faithful: the paths under ``/api/v3``, the
static bearer key (401 ``AuthenticationError`` otherwise), the ``content`` array of
``text`` / ``image_url`` parts with ``first_frame`` / ``last_frame`` roles, top-level
``ratio`` / ``duration`` (an integer: ``"5"`` is refused) / ``resolution``, image URLs
that are http(s) or ``data:image/…;base64,`` URLs, ``cgt-`` task ids, the statuses
``queued → running → succeeded | failed | cancelled | expired`` with no progress number,
``content.video_url``, output moderation as ``failed`` + ``OutputVideoSensitiveContentDetected``,
the ``{"error": {code, message, param, type}}`` envelope with Ark's codes and types and
messages ending in "Request id", DELETE that cancels a queued task, refuses a running or
cancelled one and deletes a finished one's record, the paged list, and unsigned callbacks
carrying the task object on every status change after creation.
Simplified: one account and key; model ids are not checked; no draft, reference media,
flex tier or ``frames``; ``--rt/--dur`` flags in the prompt are left in it. Inferred [I]:
the code of an unknown task (404 ``ResourceNotFound``), the answer to DELETE on a running
task (400 ``InvalidParameter``), 503 ``ServiceUnavailable``, the ``error.code`` of a task
that died of Ark's own trouble (``InternalServiceError`` for an ``internal`` render fault,
``ServerOverloaded`` for ``capacity``), and Retry-After (sent only when a fault rule asks for
it). A render fault without a kind fails with its own ``code`` as Ark's; one whose code is
``expired`` ends ``expired``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from typing import Any

import falcon

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

NAME = "byteplus"
PREFIX = credentials.PREFIXES[NAME]
TASKS = f"{PREFIX}/api/v3/contents/generations/tasks"

RATIOS = {"16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive"}
RESOLUTIONS = {"480p", "720p", "1080p"}
MIN_DURATION_SECONDS, MAX_DURATION_SECONDS = 2, 12
ROLES = {"first_frame", "last_frame", "reference_image"}
_DATA_IMAGE = re.compile(r"^data:image/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=]+$")
#: The render fault code that makes a task end ``expired`` instead of ``failed``.
EXPIRED = "expired"
#: The ``error.code`` of a task that died of a render fault of each kind.
_RENDER_FAILURES = {
    FaultKind.CONTENT_POLICY: "OutputVideoSensitiveContentDetected",
    FaultKind.INTERNAL: "InternalServiceError",
    FaultKind.CAPACITY: "ServerOverloaded",
}

#: Ark's status for the farm's phases; the others are all ``running``.
_STATUSES = {
    Phase.QUEUED: "queued",
    Phase.SUCCEEDED: "succeeded",
    Phase.CANCELED: "cancelled",
    Phase.FAILED: "failed",
}

#: Ark's error ``type`` for each HTTP status (Common Error Codes page).
_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}

#: (HTTP status, Ark code) for each request fault kind.
_FAULTS: dict[FaultKind, tuple[int, str]] = {
    FaultKind.RATE_LIMITED: (429, "RateLimitExceeded.EndpointRPMExceeded"),
    FaultKind.CAPACITY: (429, "ServerOverloaded"),
    FaultKind.QUOTA: (403, "AccountOverdueError"),
    FaultKind.AUTH: (401, "AuthenticationError"),
    FaultKind.SERVER_ERROR: (500, "InternalServiceError"),
    FaultKind.UNAVAILABLE: (503, "ServiceUnavailable"),
    FaultKind.BAD_REQUEST: (400, "InvalidParameter"),
    FaultKind.CONTENT_POLICY: (400, "InputTextSensitiveContentDetected"),
    FaultKind.HANG: (500, "InternalServiceError"),
}
#: Ark's wording for those codes (Common Error Codes page, shortened where it is long).
_MESSAGES = {
    "RateLimitExceeded.EndpointRPMExceeded": "The RPM limit of the associated endpoint for "
    "your account has been exceeded.",
    "ServerOverloaded": "The service is currently unable to handle additional requests due "
    "to server overload.",
    "AccountOverdueError": "The request failed because your account has an overdue balance.",
    "AuthenticationError": "The API key or AK/SK in the request is missing or invalid.",
    "InternalServiceError": "The service encountered an unexpected internal error.",
    "ServiceUnavailable": "The service is temporarily unavailable.",
    "InvalidParameter": "One or more parameters specified in the request are not valid.",
    "InputTextSensitiveContentDetected": "The request failed because the input text may "
    "contain sensitive information.",
    "OutputVideoSensitiveContentDetected": "The request failed because the output video may "
    "contain sensitive information.",
}


class ArkError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str = "",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param
        self.retry_after = retry_after


def mount(app: falcon.App, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
    tasks = _Tasks(farm, callbacks)
    app.add_route(TASKS, tasks)
    app.add_route(f"{TASKS}/{{task_id}}", tasks, suffix="task")
    callbacks.register(NAME, _callback)


class _Tasks:
    def __init__(self, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
        self._farm = farm
        self._callbacks = callbacks
        #: Task records erased by DELETE (the farm itself forgets nothing).
        self._deleted: set[str] = set()
        self._lock = threading.Lock()

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._answer(resp, lambda: self._create(req))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._answer(resp, lambda: self._list(req))

    def on_get_task(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        self._answer(resp, lambda: self._query(req, task_id))

    def on_delete_task(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        self._answer(resp, lambda: self._delete(req, task_id))

    def _answer(self, resp: falcon.Response, work: Any) -> None:
        try:
            resp.media = work()
        except ArkError as exc:
            resp.status = exc.status
            resp.media = {
                "error": {
                    "code": exc.code,
                    "message": f"{exc.message} Request id: {secrets.token_hex(20)}",
                    "param": exc.param,
                    "type": _TYPES.get(exc.status, "BadRequest"),
                }
            }
            if exc.retry_after is not None:
                resp.set_header("Retry-After", str(exc.retry_after))

    def _create(self, req: falcon.Request) -> dict[str, Any]:
        _authenticate(req)
        self._farm.count_submit()
        try:
            body = read_json(req)
        except BadBody as exc:
            raise ArkError(400, "InvalidParameter", str(exc)) from None
        model = body.get("model")
        rule = take_fault(
            self._farm, FaultTarget.SUBMIT, model if isinstance(model, str) else None, NAME
        )
        if rule is not None and rule.kind is not FaultKind.HANG_AFTER_CREATE:
            raise _fault_error(rule)
        snapshot, _ = self._farm.submit(_spec(req, body))
        if snapshot.spec.callback_url:
            self._callbacks.watch(snapshot.id)
        if rule is not None:
            hang(rule)
        return {"id": task_id_of(snapshot.id)}

    def _query(self, req: falcon.Request, task_id: str) -> dict[str, Any]:
        _authenticate(req)
        self._farm.count_poll()
        snapshot = self._find(task_id)
        model = snapshot.spec.model if snapshot else None
        rule = take_fault(self._farm, FaultTarget.POLL, model, NAME)
        if rule is not None:
            raise _fault_error(rule)
        if snapshot is None:
            raise _not_found(task_id)
        return _task(snapshot)

    def _delete(self, req: falcon.Request, task_id: str) -> dict[str, Any]:
        _authenticate(req)
        snapshot = self._find(task_id)
        if snapshot is None:
            raise _not_found(task_id)
        status = status_of(snapshot)
        if status in ("running", "cancelled"):
            raise ArkError(
                400,
                "InvalidParameter",
                f"The task {task_id} can not be cancelled or deleted in status {status}.",
                param="id",
            )
        if status == "queued":
            self._farm.cancel(snapshot.id)
        else:  # a finished task's record is erased
            with self._lock:
                self._deleted.add(snapshot.id)
        return {}

    def _list(self, req: falcon.Request) -> dict[str, Any]:
        _authenticate(req)
        page = req.get_param_as_int("page_num", default=1, min_value=1, max_value=500)
        size = req.get_param_as_int("page_size", default=10, min_value=1, max_value=500)
        wanted_status = req.get_param("filter.status")
        wanted_ids = set(req.get_param_as_list("filter.task_ids") or [])
        tasks = [_task(s) for s in reversed(self._farm.renders()) if self._visible(s)]
        tasks = [
            t
            for t in tasks
            if (not wanted_status or t["status"] == wanted_status)
            and (not wanted_ids or t["id"] in wanted_ids)
        ]
        return {"total": len(tasks), "items": tasks[(page - 1) * size : page * size]}

    def _find(self, task_id: str) -> RenderSnapshot | None:
        if not task_id.startswith("cgt-"):
            return None
        snapshot = self._farm.get(render_id_of(task_id))
        return snapshot if snapshot is not None and self._visible(snapshot) else None

    def _visible(self, snapshot: RenderSnapshot) -> bool:
        with self._lock:
            return snapshot.spec.dialect == NAME and snapshot.id not in self._deleted


def task_id_of(render_id: str) -> str:
    """Ark's ``cgt-…`` id for a farm render."""
    return "cgt-" + render_id.removeprefix("rnd_")


def render_id_of(task_id: str) -> str:
    return "rnd_" + task_id.removeprefix("cgt-")


def _authenticate(req: falcon.Request) -> None:
    if bearer(req) != credentials.BYTEPLUS_API_KEY:
        raise ArkError(401, "AuthenticationError", _MESSAGES["AuthenticationError"])


def _spec(req: falcon.Request, body: dict[str, Any]) -> RenderSpec:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ArkError(400, "MissingParameter", "The parameter `model` is required.", param="model")
    prompt, frames = _content(body.get("content"))
    ratio = body.get("ratio", "16:9")
    if not isinstance(ratio, str) or ratio not in RATIOS:
        raise _invalid("ratio", f"must be one of {', '.join(sorted(RATIOS))}")
    duration = body.get("duration", 5)
    if (
        not isinstance(duration, int)
        or isinstance(duration, bool)
        or not MIN_DURATION_SECONDS <= duration <= MAX_DURATION_SECONDS
    ):
        raise _invalid(
            "duration", f"must be an integer from {MIN_DURATION_SECONDS} to {MAX_DURATION_SECONDS}"
        )
    resolution = body.get("resolution", "720p")
    if not isinstance(resolution, str) or resolution not in RESOLUTIONS:
        raise _invalid("resolution", "must be one of 480p, 720p, 1080p")
    callback_url = body.get("callback_url")
    if callback_url is not None and not isinstance(callback_url, str):
        raise _invalid("callback_url", "must be a string")
    return RenderSpec(
        model=model,
        prompt=prompt,
        duration_seconds=duration,
        aspect_ratio=ratio,
        image=describe_image(frames.get("first_frame")),
        end_image=describe_image(frames.get("last_frame")),
        dialect=NAME,
        callback_url=callback_url or None,
        origin=origin(req),
    )


def _content(content: Any) -> tuple[str, dict[str, str]]:
    """The prompt and the frame URLs by role, from Ark's ``content`` array."""
    if not isinstance(content, list) or not content:
        raise ArkError(
            400, "MissingParameter", "The parameter `content` is required.", param="content"
        )
    prompt, frames = "", {}
    for index, part in enumerate(content):
        where = f"content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _invalid(f"{where}.text", "must be a string")
            prompt += part["text"]
        elif kind == "image_url":
            url = _image_url(part.get("image_url"))
            if url is None:
                raise _invalid(f"{where}.image_url.url", "must be a URL or a data:image base64 URL")
            role = part.get("role", "first_frame")
            if role not in ROLES:
                raise _invalid(f"{where}.role", f"must be one of {', '.join(sorted(ROLES))}")
            frames[role] = url
        else:
            raise _invalid(f"{where}.type", "must be text or image_url")
    if not prompt.strip() and "first_frame" not in frames:
        raise ArkError(
            400, "MissingParameter", "A text prompt or a first frame is required.", param="content"
        )
    return prompt, frames


def _image_url(value: Any) -> str | None:
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str):
        return None
    return url if url.startswith(("http://", "https://")) or _DATA_IMAGE.match(url) else None


def _invalid(param: str, why: str) -> ArkError:
    return ArkError(
        400,
        "InvalidParameter",
        f"The parameter `{param}` specified in the request is not valid: {why}.",
        param=param,
    )


def _not_found(task_id: str) -> ArkError:
    return ArkError(
        404, "ResourceNotFound", f"The specified task {task_id} is not found.", param="id"
    )


def status_of(snapshot: RenderSnapshot) -> str:
    """Ark's status for a farm render: every in-progress farm phase is ``running``."""
    status = _STATUSES.get(snapshot.status, "running")
    if status == "failed" and snapshot.error and snapshot.error.code == EXPIRED:
        return EXPIRED
    return status


def _task(snapshot: RenderSnapshot) -> dict[str, Any]:
    status = status_of(snapshot)
    done = status == "succeeded"
    created = int(snapshot.created_at.timestamp())
    return {
        "id": task_id_of(snapshot.id),
        "model": snapshot.spec.model,
        "status": status,
        "error": _failure(snapshot) if status == "failed" else None,
        "content": {"video_url": output_url(snapshot)} if done else None,
        "usage": {"completion_tokens": 108900, "total_tokens": 108900} if done else None,
        "created_at": created,
        "updated_at": created,
        "seed": 10423,
        "resolution": "720p",
        "ratio": snapshot.spec.aspect_ratio,
        "duration": snapshot.spec.duration_seconds,
        "framespersecond": 24,
        "service_tier": "default",
        "execution_expires_after": 172800,
    }


def _failure(snapshot: RenderSnapshot) -> dict[str, str]:
    request_id = f"Request id: {secrets.token_hex(20)}"
    kind = snapshot.fault_kind
    if kind is not None and kind in _RENDER_FAILURES:
        code = _RENDER_FAILURES[kind]
        return {"code": code, "message": f"{_MESSAGES[code]} {request_id}"}
    error = snapshot.error
    code = error.code if error is not None else "InternalServiceError"
    message = error.message if error is not None else _MESSAGES[code]
    return {"code": code, "message": f"{message} {request_id}"}


def _fault_error(rule: FaultRule) -> ArkError:
    if rule.kind in _FAULTS:
        status, code = _FAULTS[rule.kind]
        message = rule.message or _MESSAGES[code]
        return ArkError(rule.status or status, code, message, retry_after=rule.retry_after)
    return ArkError(rule.status or 500, rule.code, rule.describe(), retry_after=rule.retry_after)


def _callback(snapshot: RenderSnapshot, previous: Phase) -> OutgoingCallback | None:
    """Ark POSTs the task object, unsigned, whenever the task's own status changes."""
    if snapshot.spec.callback_url is None:
        return None
    if _STATUSES.get(previous, "running") == status_of(snapshot):
        return None
    return OutgoingCallback(snapshot.spec.callback_url, json.dumps(_task(snapshot)).encode())
