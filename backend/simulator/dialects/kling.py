"""Kling's official API, as the simulator speaks it (see ``backend/providers/kling.py``).

Faithful: the paths, the HS256 JWT really verified against the secret key registered for
its ``iss`` (codes 1001 missing, 1002 malformed, 1003 not yet valid, 1004 expired, 1000
bad signature or unknown key), the ``{code, message, request_id, data}`` envelope with
business codes, string durations, raw-base64 images (a ``data:`` prefix is refused),
``external_task_id`` unique per account and usable in place of the task id, the
``submitted → processing → succeed | failed`` statuses with millisecond timestamps, and
unsigned callbacks on every status change.
Simplified: one account; no multi-shot, camera control or masks; a duplicate
``external_task_id`` is refused with 1201 (Kling does not document what it does) [I].
Render faults end ``failed`` with a ``task_status_msg``: "Failure to pass the risk control
system" for ``content_policy`` [I], and, since Kling documents no wording for its own
trouble, the words of its 5000/5001 errors for ``internal`` ("server internal error, please
try again later") and ``capacity`` ("service busy, please try again later") [I]; a rule
without a kind gives its own message.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import falcon
import jwt

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

NAME = "kling"
PREFIX = credentials.PREFIXES[NAME]

MODELS = {
    "kling-v1",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
    "kling-v2-6",
    "kling-v3",
}
DURATIONS = {str(n) for n in range(3, 16)}
ASPECT_RATIOS = {"16:9", "9:16", "1:1"}
MAX_PROMPT_CHARS = 2500

#: (HTTP status, business code, message) for each fault kind.
_FAULTS: dict[FaultKind, tuple[int, int, str]] = {
    FaultKind.RATE_LIMITED: (429, 1302, "request rate too high"),
    FaultKind.CAPACITY: (429, 1303, "parallel task over resource pack limit"),
    FaultKind.QUOTA: (429, 1102, "resource pack depleted or expired"),
    FaultKind.AUTH: (401, 1000, "authentication failed"),
    FaultKind.SERVER_ERROR: (500, 5000, "server internal error"),
    FaultKind.UNAVAILABLE: (503, 5001, "service temporarily unavailable"),
    FaultKind.BAD_REQUEST: (400, 1201, "invalid request parameters"),
    FaultKind.CONTENT_POLICY: (400, 1301, "content security policy triggered"),
    FaultKind.HANG: (504, 5002, "server timeout"),
    FaultKind.INTERNAL: (500, 5000, "server internal error"),
}

_STATUSES = {
    Phase.QUEUED: "submitted",
    Phase.SUCCEEDED: "succeed",
    Phase.FAILED: "failed",
    Phase.CANCELED: "failed",
}


class KlingError(Exception):
    def __init__(
        self, status: int, code: int, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


def mount(app: falcon.App, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
    tasks = _Tasks(farm, callbacks)
    for kind in ("text2video", "image2video"):
        app.add_route(f"{PREFIX}/v1/videos/{kind}", tasks, suffix=kind.replace("2", "_to_"))
        app.add_route(f"{PREFIX}/v1/videos/{kind}/{{task_id}}", tasks, suffix="task")
    callbacks.register(NAME, _callback)


class _Tasks:
    def __init__(self, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
        self._farm = farm
        self._callbacks = callbacks

    def on_post_text_to_video(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._answer(resp, lambda: self._create(req, image_task=False))

    def on_post_image_to_video(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._answer(resp, lambda: self._create(req, image_task=True))

    def on_get_text_to_video(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._answer(resp, lambda: self._list(req, image_task=False))

    def on_get_image_to_video(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._answer(resp, lambda: self._list(req, image_task=True))

    def on_get_task(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        self._answer(resp, lambda: self._query(req, task_id))

    def _answer(self, resp: falcon.Response, work: Any) -> None:
        try:
            data = work()
        except KlingError as exc:
            resp.status = exc.status
            resp.media = _envelope(exc.code, exc.message, None)
            if exc.retry_after is not None:  # not documented by Kling; sent when a test asks
                resp.set_header("Retry-After", str(exc.retry_after))
            return
        resp.media = _envelope(0, "SUCCEED", data)

    def _create(self, req: falcon.Request, *, image_task: bool) -> dict[str, Any]:
        _authenticate(req)
        self._farm.count_submit()
        try:
            body = read_json(req)
        except BadBody as exc:
            raise KlingError(400, 1200, str(exc)) from None
        model = body.get("model_name") or "kling-v1"
        rule = take_fault(self._farm, FaultTarget.SUBMIT, model, NAME)
        if rule is not None and rule.kind is not FaultKind.HANG_AFTER_CREATE:
            raise _fault_error(rule)
        external_id = body.get("external_task_id") or None
        spec = _spec(req, body, model, image_task=image_task, reference=external_id)
        key = f"{NAME}:{external_id}" if external_id else None
        if key and self._farm.find(key) is not None:
            raise KlingError(400, 1201, "external_task_id already exists")
        snapshot, _ = self._farm.submit(spec, key)
        if spec.callback_url:
            self._callbacks.watch(snapshot.id)
        if rule is not None:
            hang(rule)
        return _task(snapshot)

    def _query(self, req: falcon.Request, task_id: str) -> dict[str, Any]:
        _authenticate(req)
        self._farm.count_poll()
        snapshot = self._farm.get(task_id) or self._farm.find(f"{NAME}:{task_id}")
        rule = take_fault(
            self._farm, FaultTarget.POLL, snapshot.spec.model if snapshot else None, NAME
        )
        if rule is not None:
            raise _fault_error(rule)
        image_task = req.path.split("/")[-2] == "image2video"
        if snapshot is None or snapshot.spec.dialect != NAME or _is_image(snapshot) != image_task:
            raise KlingError(404, 1203, "task not found")
        return _task(snapshot)

    def _list(self, req: falcon.Request, *, image_task: bool) -> list[dict[str, Any]]:
        _authenticate(req)
        page = req.get_param_as_int("pageNum", default=1, min_value=1, max_value=1000)
        size = req.get_param_as_int("pageSize", default=30, min_value=1, max_value=500)
        mine = [
            s for s in self._farm.renders() if s.spec.dialect == NAME and _is_image(s) == image_task
        ]
        mine.reverse()
        return [_task(s) for s in mine[(page - 1) * size : page * size]]


def _authenticate(req: falcon.Request) -> None:
    """Kling's JWT check: signature by the secret key of the ``iss`` access key, nbf, exp."""
    value = req.get_header("Authorization")
    if not value:
        raise KlingError(401, 1001, "Authorization is empty")
    token = bearer(req)
    if token is None:
        raise KlingError(401, 1002, "Authorization is invalid")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise KlingError(401, 1002, "Authorization is invalid") from None
    if claims.get("iss") != credentials.KLING_ACCESS_KEY:
        raise KlingError(401, 1000, "authentication failed: unknown access key")
    try:
        jwt.decode(
            token,
            credentials.KLING_SECRET_KEY,
            algorithms=["HS256"],
            options={"require": ["exp", "nbf"]},
        )
    except jwt.ImmatureSignatureError:
        raise KlingError(401, 1003, "Authorization is not yet valid") from None
    except jwt.ExpiredSignatureError:
        raise KlingError(401, 1004, "Authorization has expired") from None
    except jwt.InvalidTokenError:
        raise KlingError(401, 1000, "authentication failed") from None


def _spec(
    req: falcon.Request,
    body: dict[str, Any],
    model: str,
    *,
    image_task: bool,
    reference: str | None,
) -> RenderSpec:
    if model not in MODELS:
        raise KlingError(404, 1203, f"model_name {model!r} does not exist")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or (not prompt.strip() and not image_task):
        raise KlingError(400, 1201, "prompt is required")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise KlingError(400, 1201, f"prompt must be at most {MAX_PROMPT_CHARS} characters")
    duration = body.get("duration", "5")
    if not isinstance(duration, str) or duration not in DURATIONS:
        raise KlingError(400, 1201, "duration must be a string from '3' to '15'")
    aspect_ratio = body.get("aspect_ratio", "16:9")
    if aspect_ratio not in ASPECT_RATIOS:
        raise KlingError(400, 1201, "aspect_ratio must be one of 16:9, 9:16, 1:1")
    image, tail = body.get("image"), body.get("image_tail")
    if image_task:
        if not image and not tail:
            raise KlingError(400, 1201, "image or image_tail is required")
        for field, value in (("image", image), ("image_tail", tail)):
            if isinstance(value, str) and value.startswith("data:"):
                raise KlingError(400, 1201, f"{field}: base64 must not carry a data: prefix")
    callback_url = body.get("callback_url")
    if callback_url is not None and not isinstance(callback_url, str):
        raise KlingError(400, 1201, "callback_url must be a string")
    return RenderSpec(
        model=model,
        prompt=prompt,
        duration_seconds=int(duration),
        aspect_ratio=aspect_ratio,
        image=describe_image(image) if image_task else None,
        end_image=describe_image(tail) if image_task else None,
        dialect=NAME,
        callback_url=callback_url or None,
        origin=origin(req),
        reference=reference,
    )


def _is_image(snapshot: RenderSnapshot) -> bool:
    return snapshot.spec.image is not None or snapshot.spec.end_image is not None


def _task(snapshot: RenderSnapshot) -> dict[str, Any]:
    external_id = snapshot.spec.reference
    created_ms = int(snapshot.created_at.timestamp() * 1000)
    status = _STATUSES.get(snapshot.status, "processing")
    data: dict[str, Any] = {
        "task_id": snapshot.id,
        "task_status": status,
        "task_info": {"external_task_id": external_id} if external_id else {},
        "created_at": created_ms,
        "updated_at": created_ms,
    }
    if status == "failed":
        data["task_status_msg"] = _failure_message(snapshot)
    if status == "succeed":
        data["task_result"] = {
            "videos": [
                {
                    "id": f"vid_{snapshot.id}",
                    "url": output_url(snapshot),
                    "duration": str(snapshot.spec.duration_seconds),
                }
            ]
        }
        data["final_unit_deduction"] = "1"
    return data


#: ``task_status_msg`` of a render that failed of a fault of each kind (module docstring).
_FAILURE_MESSAGES = {
    FaultKind.CONTENT_POLICY: "Failure to pass the risk control system",
    FaultKind.INTERNAL: "server internal error, please try again later",
    FaultKind.CAPACITY: "service busy, please try again later",
}


def _failure_message(snapshot: RenderSnapshot) -> str:
    if snapshot.status is Phase.CANCELED:
        return "task canceled"
    if snapshot.fault_kind in _FAILURE_MESSAGES:
        return _FAILURE_MESSAGES[snapshot.fault_kind]
    return snapshot.error.message if snapshot.error else "task failed"


def _fault_error(rule: FaultRule) -> KlingError:
    if rule.kind is not None and rule.kind in _FAULTS:
        status, code, message = _FAULTS[rule.kind]
        return KlingError(rule.status or status, code, rule.message or message, rule.retry_after)
    status = rule.status or 500
    code = {429: 1302, 503: 5001, 504: 5002, 401: 1000, 400: 1201}.get(status, 5000)
    return KlingError(status, code, rule.describe(), rule.retry_after)


def _envelope(code: int, message: str, data: Any) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "request_id": secrets.token_hex(16),
        "data": data,
    }


def _callback(snapshot: RenderSnapshot, previous: Phase) -> OutgoingCallback | None:
    """Kling notifies on every change of its own status, with the flat task object."""
    if snapshot.spec.callback_url is None:
        return None
    if _STATUSES.get(previous, "processing") == _STATUSES.get(snapshot.status, "processing"):
        return None
    body = _task(snapshot)
    return OutgoingCallback(snapshot.spec.callback_url, json.dumps(body).encode())
