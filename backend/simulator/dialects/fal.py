"""fal.ai's queue API, as the simulator speaks it (see ``backend/providers/fal.py``).

Faithful: ``Authorization: Key <id:secret>`` (401 ``No user found for Key ID and Secret``
otherwise); submit to ``/{owner}/{app}/{endpoint}`` with ``?fal_webhook=``, answered with
``request_id``, ``status_url``, ``response_url`` and ``cancel_url``; status, result and
cancel under ``/{owner}/{app}/requests/{id}`` without the endpoint path (another app gets
404); ``IN_QUEUE`` (``queue_position``) → ``IN_PROGRESS`` (``logs`` with ``?logs=1``) →
``COMPLETED``, a failure being ``COMPLETED`` with ``error``/``error_type`` and a result
call answering the model error (422 ``detail[]`` typed ``content_policy_violation``, 500
``internal_server_error``, 499 after a cancel). Render faults of kind ``capacity`` and
``internal`` end as request errors after fal's own retries ran out: 503
``runner_scheduling_failure`` and 503 ``runner_disconnected`` (``detail`` + ``error_type``
+ ``X-Fal-Error-Type``; docs "Request Error Types"), ``server_error`` as the model's 500
with ``X-Fal-Retryable: true`` (docs "Model Errors"), a rule without a kind as the model's
500 with no such header. Kling O3 input is validated *in the queue*,
as fal does: a bad field is accepted at submit and fails the request with a 422 ``detail[]``
(duration must be a string "3"…"15"). Infrastructure errors carry ``detail`` +
``error_type`` + ``X-Fal-Error-Type``; an exhausted balance is 403 "User is locked".
Webhooks are sent once, at the end, ED25519-signed with a key pair made at mount whose
public half is served as a JWKS at ``/fal/.well-known/jwks.json``.
Simplified: request ids are the farm's ids, not UUIDs; a cancel stops the render at once
(fal only signals a running app). [I]: what the status shows for a failed or cancelled
request (``error`` = the first message, ``error_type`` = its type), 202 for unfinished
statuses, the 429 body, and 400 for a result asked for too early.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import falcon
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from backend.simulator import credentials
from backend.simulator.callbacks import CallbackDispatcher, OutgoingCallback
from backend.simulator.dialects.common import (
    BadBody,
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

NAME = "fal"
PREFIX = credentials.PREFIXES[NAME]

DURATIONS = tuple(str(n) for n in range(3, 16))
ASPECT_RATIOS = ("16:9", "9:16", "1:1")
MAX_PROMPT_CHARS = 2500
ERRORS_URL = "https://docs.fal.ai/errors"
CANCELLED = "Request cancelled by the client."
FLAGGED = "The content was flagged by a content checker."
KEY_ID = "sim-fal-webhook-key"

_ENDED = (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED)

#: What fal answers for each request fault kind: HTTP status, detail, error_type.
_FAULTS: dict[FaultKind, tuple[int, str, str | None]] = {
    FaultKind.RATE_LIMITED: (429, "Too many requests: concurrency limit reached", None),
    FaultKind.CAPACITY: (503, "No runner could be allocated", "runner_scheduling_failure"),
    FaultKind.QUOTA: (
        403,
        "User is locked. Reason: Exhausted balance. Top up your balance at "
        "fal.ai/dashboard/billing.",
        None,
    ),
    FaultKind.AUTH: (401, "No user found for Key ID and Secret", None),
    FaultKind.SERVER_ERROR: (500, "Internal Server Error", None),
    FaultKind.UNAVAILABLE: (503, "The runner refused the connection", "runner_connection_refused"),
    FaultKind.HANG: (504, "Request timed out", "request_timeout"),
}


#: How a render that died of a fault of these kinds ends: the request error (status,
#: ``detail``, ``error_type``) fal reports once its queue has given up retrying it.
_RENDER_REQUEST_ERRORS: dict[FaultKind, tuple[int, str, str]] = {
    FaultKind.CAPACITY: (
        503,
        "No runner could be allocated to handle the request.",
        "runner_scheduling_failure",
    ),
    FaultKind.INTERNAL: (
        503,
        "The runner disconnected unexpectedly during processing.",
        "runner_disconnected",
    ),
}


class FalError(Exception):
    """An HTTP error answer in fal's shape; ``retryable`` becomes ``X-Fal-Retryable``."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        retry_after: int | None = None,
        *,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(str(body))
        self.status, self.body, self.retry_after = status, body, retry_after
        self.retryable = retryable


def mount(app: falcon.App, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
    queue = _Queue(farm, callbacks)
    app.add_route(f"{PREFIX}/.well-known/jwks.json", queue, suffix="jwks")
    app.add_route(f"{PREFIX}/{{owner}}/{{app_name}}", queue)
    app.add_route(f"{PREFIX}/{{owner}}/{{app_name}}/{{endpoint:path}}", queue, suffix="endpoint")
    requests = f"{PREFIX}/{{owner}}/{{app_name}}/requests/{{request_id}}"
    app.add_route(requests, queue, suffix="result")
    app.add_route(f"{requests}/status", queue, suffix="status")
    app.add_route(f"{requests}/cancel", queue, suffix="cancel")
    callbacks.register(NAME, queue.webhook)


class _Queue:
    def __init__(self, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
        self._farm = farm
        self._callbacks = callbacks
        self._signing_key = Ed25519PrivateKey.generate()
        #: Requests whose input failed validation in the queue, with fal's ``detail[]``.
        self._invalid: dict[str, list[dict[str, Any]]] = {}

    # -- responders -------------------------------------------------------------------------

    def on_get_jwks(self, req: falcon.Request, resp: falcon.Response) -> None:
        raw = self._signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        key = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": KEY_ID, "use": "sig"}
        resp.media = {"keys": [key]}

    def on_post(
        self, req: falcon.Request, resp: falcon.Response, owner: str, app_name: str
    ) -> None:
        _answer(resp, lambda: self._submit(req, f"{owner}/{app_name}"))

    def on_post_endpoint(
        self, req: falcon.Request, resp: falcon.Response, owner: str, app_name: str, endpoint: str
    ) -> None:
        _answer(resp, lambda: self._submit(req, f"{owner}/{app_name}/{endpoint}"))

    def on_get_status(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        _answer(resp, lambda: self._status(req, **path))

    def on_get_result(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        _answer(resp, lambda: self._result(req, **path))

    def on_put_cancel(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        _answer(resp, lambda: self._cancel(req, **path))

    # -- the queue --------------------------------------------------------------------------

    def _submit(self, req: falcon.Request, model: str) -> tuple[int, dict[str, Any]]:
        _authenticate(req)
        self._farm.count_submit()
        rule = take_fault(self._farm, FaultTarget.SUBMIT, model, NAME)
        if rule is not None and rule.kind is not FaultKind.HANG_AFTER_CREATE:
            raise _fault_error(rule)
        try:
            body = read_json(req)
        except BadBody as exc:
            raise FalError(422, {"detail": [_problem([], str(exc), "json_invalid")]}) from None
        image_task = model.endswith("image-to-video")
        snapshot, _ = self._farm.submit(_spec(req, model, body, image_task=image_task))
        problems = _validate(body, image_task=image_task)
        if problems:  # the queue took it; the app refuses it
            self._invalid[snapshot.id] = problems
            self._farm.cancel(snapshot.id)
        if snapshot.spec.callback_url:
            self._callbacks.watch(snapshot.id)
        if rule is not None:
            hang(rule)
        return 200, {**_urls(snapshot), "status": "IN_QUEUE", "queue_position": 0}

    def _status(
        self, req: falcon.Request, owner: str, app_name: str, request_id: str
    ) -> tuple[int, dict[str, Any]]:
        _authenticate(req)
        self._farm.count_poll()
        snapshot = self._find(owner, app_name, request_id)
        model = snapshot.spec.model if snapshot else None
        rule = take_fault(self._farm, FaultTarget.POLL, model, NAME)
        if rule is not None and rule.kind is not FaultKind.HANG_AFTER_CREATE:
            raise _fault_error(rule)
        if rule is not None:
            hang(rule)
        if snapshot is None:
            raise FalError(404, {"detail": f"Request {request_id} not found"})
        body: dict[str, Any] = {**_urls(snapshot), "logs": None}
        with_logs = req.get_param_as_bool("logs", default=False)
        if snapshot.status is Phase.QUEUED:
            return 202, {**body, "status": "IN_QUEUE", "queue_position": snapshot.queue_position}
        if snapshot.status not in _ENDED:
            logs = [_log(f"Generating video: {snapshot.progress:.0%}")] if with_logs else None
            return 202, {**body, "status": "IN_PROGRESS", "logs": logs}
        body.update(status="COMPLETED", metrics={"inference_time": 0.4})
        _, payload = self._outcome(snapshot)
        if isinstance(payload.get("detail"), list):
            first = payload["detail"][0]
            body.update(error=first["msg"], error_type=first["type"])
        elif "detail" in payload:
            body.update(error=payload["detail"], error_type=payload.get("error_type"))
        return 200, body

    def _result(
        self, req: falcon.Request, owner: str, app_name: str, request_id: str
    ) -> tuple[int, dict[str, Any]]:
        _authenticate(req)
        snapshot = self._find(owner, app_name, request_id)
        if snapshot is None:
            raise FalError(404, {"detail": f"Request {request_id} not found"})
        if snapshot.status not in _ENDED:
            raise FalError(400, {"detail": "Request is still in progress"})
        status, payload = self._outcome(snapshot)
        if status >= 400:
            raise FalError(status, payload, retryable=_retryable(snapshot))
        return status, payload

    def _cancel(
        self, req: falcon.Request, owner: str, app_name: str, request_id: str
    ) -> tuple[int, dict[str, Any]]:
        _authenticate(req)
        snapshot = self._find(owner, app_name, request_id)
        if snapshot is None:
            return 404, {"status": "NOT_FOUND"}
        if snapshot.status in _ENDED:
            return 400, {"status": "ALREADY_COMPLETED"}
        self._farm.cancel(snapshot.id)
        return 202, {"status": "CANCELLATION_REQUESTED"}

    def _find(self, owner: str, app_name: str, request_id: str) -> RenderSnapshot | None:
        snapshot = self._farm.get(request_id)
        if snapshot is None or snapshot.spec.dialect != NAME:
            return None
        return snapshot if _app_of(snapshot.spec.model) == f"{owner}/{app_name}" else None

    def _outcome(self, snapshot: RenderSnapshot) -> tuple[int, dict[str, Any]]:
        """What the app answered for an ended request: its HTTP status and body."""
        if snapshot.id in self._invalid:
            return 422, {"detail": self._invalid[snapshot.id]}
        if snapshot.status is Phase.CANCELED:
            return 499, {"detail": CANCELLED}
        if snapshot.status is Phase.FAILED:
            kind = snapshot.fault_kind
            if kind is FaultKind.CONTENT_POLICY:
                problem = _problem(["body", "prompt"], FLAGGED, "content_policy_violation")
                return 422, {"detail": [{**problem, "categories": ["violence"]}]}
            if kind in _RENDER_REQUEST_ERRORS:
                status, detail, error_type = _RENDER_REQUEST_ERRORS[kind]
                return status, {"detail": detail, "error_type": error_type}
            message = snapshot.error.message if snapshot.error else "Internal Server Error"
            return 500, {"detail": [_problem(["body"], message, "internal_server_error")]}
        video = {"url": output_url(snapshot), "content_type": "video/mp4", "file_name": "out.mp4"}
        return 200, {"video": video}

    # -- webhooks ---------------------------------------------------------------------------

    def webhook(self, snapshot: RenderSnapshot, previous: Phase | None) -> OutgoingCallback | None:
        """fal calls once, when the request has ended, with the result as ``payload``."""
        if snapshot.spec.callback_url is None or snapshot.status not in _ENDED:
            return None
        status, payload = self._outcome(snapshot)
        body = {
            "request_id": snapshot.id,
            "gateway_request_id": snapshot.id,
            "status": "OK" if status < 400 else "ERROR",
            "payload": payload,
            "error": None if status < 400 else f"Invalid status code: {status}",
        }
        raw = json.dumps(body).encode()
        return OutgoingCallback(
            snapshot.spec.callback_url, raw, self.signed_headers(snapshot.id, raw)
        )

    def signed_headers(
        self, request_id: str, raw: bytes, timestamp: int | None = None
    ) -> dict[str, str]:
        sent_at = str(int(time.time()) if timestamp is None else timestamp)
        user_id = credentials.FAL_USER_ID
        message = f"{request_id}\n{user_id}\n{sent_at}\n{hashlib.sha256(raw).hexdigest()}"
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": user_id,
            "X-Fal-Webhook-Timestamp": sent_at,
            "X-Fal-Webhook-Signature": self._signing_key.sign(message.encode()).hex(),
        }


def _answer(resp: falcon.Response, work: Any) -> None:
    try:
        status, body = work()
    except FalError as exc:
        status, body = exc.status, exc.body
        if exc.retry_after is not None:
            resp.set_header("Retry-After", str(exc.retry_after))
        if body.get("error_type"):
            resp.set_header("X-Fal-Error-Type", body["error_type"])
        if exc.retryable is not None:
            resp.set_header("X-Fal-Retryable", "true" if exc.retryable else "false")
    resp.status = status
    resp.media = body


def _authenticate(req: falcon.Request) -> None:
    scheme, _, key = (req.get_header("Authorization") or "").partition(" ")
    if scheme != "Key" or key.strip() != credentials.FAL_KEY:
        raise FalError(401, {"detail": "No user found for Key ID and Secret"})


def _spec(req: falcon.Request, model: str, body: dict[str, Any], *, image_task: bool) -> RenderSpec:
    duration, ratio = body.get("duration", "5"), body.get("aspect_ratio", "16:9")
    return RenderSpec(
        model=model,
        prompt=str(body.get("prompt") or ""),
        duration_seconds=int(duration) if str(duration).isdigit() else 0,
        aspect_ratio="auto" if image_task else str(ratio),
        image=describe_image(body.get("image_url")) if image_task else None,
        end_image=describe_image(body.get("end_image_url")) if image_task else None,
        dialect=NAME,
        callback_url=req.get_param("fal_webhook") or None,
        origin=origin(req),
    )


def _validate(body: dict[str, Any], *, image_task: bool) -> list[dict[str, Any]]:
    """Kling O3's input schema on fal, in pydantic's words, as its app answers them."""
    problems: list[dict[str, Any]] = []
    prompt = body.get("prompt")
    if prompt is None:
        problems.append(_problem(["body", "prompt"], "Field required", "missing"))
    elif not isinstance(prompt, str):
        problems.append(
            _problem(["body", "prompt"], "Input should be a valid string", "string_type")
        )
    elif len(prompt) > MAX_PROMPT_CHARS:
        too_long = f"String should have at most {MAX_PROMPT_CHARS} characters"
        problems.append(_problem(["body", "prompt"], too_long, "string_too_long"))
    _literal(problems, body, "duration", DURATIONS)
    if not image_task:
        _literal(problems, body, "aspect_ratio", ASPECT_RATIOS)
    else:
        for field in ("image_url", "end_image_url"):
            value = body.get(field)
            if value is None and field == "image_url":
                problems.append(_problem(["body", field], "Field required", "missing"))
            elif value is not None and not (
                isinstance(value, str) and value.startswith(("http://", "https://", "data:"))
            ):
                problems.append(
                    _problem(["body", field], "Failed to load the image", "image_load_error")
                )
    return problems


def _literal(
    problems: list[dict[str, Any]], body: dict[str, Any], field: str, allowed: tuple[str, ...]
) -> None:
    if field in body and body[field] not in allowed:
        choices = ", ".join(f"'{value}'" for value in allowed)
        problems.append(
            {
                **_problem(["body", field], f"Input should be {choices}", "literal_error"),
                "input": body[field],
            }
        )


def _problem(loc: list[str], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind, "url": f"{ERRORS_URL}#{kind}"}


def _fault_error(rule: FaultRule) -> FalError:
    if rule.kind is FaultKind.CONTENT_POLICY:
        problem = _problem(["body", "prompt"], FLAGGED, "content_policy_violation")
        return FalError(422, {"detail": [problem]})
    if rule.kind is FaultKind.BAD_REQUEST:
        return FalError(422, {"detail": [_problem(["body"], rule.describe(), "value_error")]})
    if rule.kind is not None and rule.kind in _FAULTS:
        status, detail, error_type = _FAULTS[rule.kind]
        body = {"detail": rule.message or detail, "error_type": error_type}
        return FalError(status, body, rule.retry_after)
    return FalError(
        rule.status or 500, {"detail": rule.describe(), "error_type": rule.code}, rule.retry_after
    )


def _retryable(snapshot: RenderSnapshot) -> bool | None:
    """``X-Fal-Retryable`` of a failed request's result: only a render fault of kind
    ``server_error`` (a model error the app itself calls transient) sends it."""
    return True if snapshot.fault_kind is FaultKind.SERVER_ERROR else None


def _urls(snapshot: RenderSnapshot) -> dict[str, str]:
    base = f"{snapshot.spec.origin}{PREFIX}/{_app_of(snapshot.spec.model)}/requests/{snapshot.id}"
    return {
        "request_id": snapshot.id,
        "gateway_request_id": snapshot.id,
        "response_url": base,
        "status_url": f"{base}/status",
        "cancel_url": f"{base}/cancel",
    }


def _app_of(model: str) -> str:
    return "/".join(model.split("/")[:2])


def _log(message: str) -> dict[str, str]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    return {"message": message, "level": "INFO", "source": "USER", "timestamp": now}
