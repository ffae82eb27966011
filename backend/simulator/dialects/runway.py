"""Runway's developer API, as the simulator speaks it (see ``backend/providers/runway.py``).

Faithful: the paths; the bearer key and the required ``X-Runway-Version: 2024-11-06``
(400 when missing or unknown, checked after the key's 401); the ``{"error", "issues",
"docUrl"}`` envelope, with the validator's ``issues`` for bad bodies; per-model rules from
runwayml/sdk-python's create params (gen4.5: integer duration 2-10, ratios 1280:720 and
720:1280 for text, six pixel ratios for images, a ``first`` frame only; veo3.1 also takes a
``last`` frame); images as HTTPS URLs on a domain name or ``data:image/…`` URIs up to 5 MB;
``{"id"}`` on create; tasks ``PENDING → RUNNING (progress 0-1) → SUCCEEDED (output[])``,
``FAILED`` with ``failure``/``failureCode`` and ``CANCELLED``; ``DELETE`` answering 204,
cancelling an unfinished task and deleting a finished one (404 afterwards); the
organisation's credit balance and per-model usage. Faults speak Runway: a ``capacity``
submit creates the task and shows it ``THROTTLED`` (the per-model concurrency cap), a
``quota`` one is the 400 "not enough credits", a ``content_policy`` one a task that fails
input moderation (``SAFETY.INPUT.TEXT``); render faults end ``FAILED`` with the task-failures
page's codes: ``content_policy`` as ``SAFETY.OUTPUT.VIDEO``, ``internal`` as
``INTERNAL.BAD_OUTPUT.CODE01``, ``capacity`` as ``THIRD_PARTY.UNAVAILABLE`` (Runway has no
capacity failure code of its own; that code, quoted by several integrations [3P], is the
nearest), and a rule without a kind with its own ``code`` as the ``failureCode``.
Simplified: one organisation; task ids are the farm's, not UUIDs; no callbacks (Runway has
none); the farm's clock keeps running while a task shows ``THROTTLED`` (``retry_after`` of
the rule, else 2 s), so it may come out of it already advanced; the exact texts of the 401,
429 and version errors are not documented and are paraphrased [I].
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import falcon

from backend.simulator import credentials
from backend.simulator.callbacks import CallbackDispatcher
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

NAME = "runway"
PREFIX = credentials.PREFIXES[NAME]

API_VERSIONS = {"2024-11-06"}
DOC_URL = "https://docs.dev.runwayml.com/api"
MAX_PROMPT_CHARS = 1000
MAX_DATA_URI_BYTES = 5 * 1024 * 1024
MAX_URL_CHARS = 2048
IMAGE_TYPES = ("data:image/png;", "data:image/jpeg;", "data:image/jpg;", "data:image/webp;")
#: How long a task created under a ``capacity`` fault stays THROTTLED by default.
THROTTLED_SECONDS = 2.0
#: What ``GET /v1/organization`` reports before any task is paid for.
CREDIT_BALANCE = 10_000

_GEN4_IMAGES = frozenset({"1280:720", "720:1280", "1104:832", "960:960", "832:1104", "1584:672"})
_VEO = frozenset({"1280:720", "720:1280", "1080:1920", "1920:1080"})
_UP_TO_10 = frozenset(range(2, 11))


@dataclass(frozen=True)
class _ModelRules:
    text_ratios: frozenset[str]  # empty: no text_to_video for this model
    image_ratios: frozenset[str]
    durations: frozenset[int]
    positions: frozenset[str]  # promptImage positions the model takes


MODELS = {
    "gen4.5": _ModelRules(
        frozenset({"1280:720", "720:1280"}), _GEN4_IMAGES, _UP_TO_10, frozenset({"first"})
    ),
    "veo3.1": _ModelRules(_VEO, _VEO, frozenset({4, 6, 8}), frozenset({"first", "last"})),
}

#: (HTTP status, error text) for each fault kind answered as an HTTP error.
_FAULTS: dict[FaultKind, tuple[int, str]] = {
    FaultKind.RATE_LIMITED: (429, "Too many requests. Please retry later."),
    FaultKind.CAPACITY: (503, "Runway is shedding load. Please retry later."),
    FaultKind.QUOTA: (400, "You do not have enough credits to run this task."),
    FaultKind.AUTH: (401, "The provided API key is not valid."),
    FaultKind.SERVER_ERROR: (500, "An internal error occurred."),
    FaultKind.UNAVAILABLE: (503, "Runway is shedding load. Please retry later."),
    FaultKind.BAD_REQUEST: (400, "Validation of body failed"),
    FaultKind.HANG: (504, "Runway is overloaded and could not satisfy the request."),
    FaultKind.INTERNAL: (500, "An internal error occurred."),
}

#: Farm statuses with a Runway name of their own; every other one is RUNNING.
#: Submit faults after which Runway still creates the task.
_CREATING_KINDS = (FaultKind.CAPACITY, FaultKind.CONTENT_POLICY, FaultKind.HANG_AFTER_CREATE)

_STATUSES = {
    Phase.QUEUED: "PENDING",
    Phase.SUCCEEDED: "SUCCEEDED",
    Phase.FAILED: "FAILED",
    Phase.CANCELED: "CANCELLED",
}


class RunwayError(Exception):
    def __init__(self, status: int, error: str, issues: list[dict[str, Any]] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.issues = status, error, issues
        self.retry_after: int | None = None


def mount(app: falcon.App, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
    tasks = _Tasks(farm)
    app.add_route(f"{PREFIX}/v1/text_to_video", tasks, suffix="text_to_video")
    app.add_route(f"{PREFIX}/v1/image_to_video", tasks, suffix="image_to_video")
    app.add_route(f"{PREFIX}/v1/tasks/{{task_id}}", tasks, suffix="task")
    app.add_route(f"{PREFIX}/v1/organization", tasks, suffix="organization")


class _Tasks:
    """Runway's tasks, plus what only this dialect knows about them: which ones are
    throttled (and until when), failed input moderation, or were deleted."""

    def __init__(self, farm: RenderFarm) -> None:
        self._farm = farm
        self._lock = threading.Lock()
        self._throttled_until: dict[str, float] = {}
        self._moderated: dict[str, str] = {}
        self._deleted: set[str] = set()

    def on_post_text_to_video(self, req: falcon.Request, resp: falcon.Response) -> None:
        _answer(resp, lambda: self._create(req, image_task=False))

    def on_post_image_to_video(self, req: falcon.Request, resp: falcon.Response) -> None:
        _answer(resp, lambda: self._create(req, image_task=True))

    def on_get_task(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        _answer(resp, lambda: self._retrieve(req, task_id))

    def on_delete_task(self, req: falcon.Request, resp: falcon.Response, task_id: str) -> None:
        if _answer(resp, lambda: self._delete(req, task_id)):
            resp.status, resp.media = 204, None

    def on_get_organization(self, req: falcon.Request, resp: falcon.Response) -> None:
        _answer(resp, lambda: self._organization(req))

    def _create(self, req: falcon.Request, *, image_task: bool) -> dict[str, Any]:
        _authenticate(req)
        self._farm.count_submit()
        try:
            body = read_json(req)
        except BadBody as exc:
            raise RunwayError(
                400, "Validation of body failed", [_issue("body", str(exc))]
            ) from None
        model = body.get("model") if isinstance(body.get("model"), str) else None
        rule = take_fault(self._farm, FaultTarget.SUBMIT, model, NAME)
        if rule is not None and rule.kind not in _CREATING_KINDS:
            raise _fault_error(rule)
        snapshot, _ = self._farm.submit(_spec(req, body, image_task=image_task))
        if rule is not None:
            self._apply_create_fault(rule, snapshot.id)
        return {"id": snapshot.id}

    def _apply_create_fault(self, rule: FaultRule, task_id: str) -> None:
        """What a fault that still lets Runway create the task does to it."""
        if rule.kind is FaultKind.CAPACITY:
            hold = rule.retry_after if rule.retry_after is not None else THROTTLED_SECONDS
            with self._lock:
                self._throttled_until[task_id] = time.monotonic() + hold
        elif rule.kind is FaultKind.CONTENT_POLICY:
            self._moderate(task_id, "SAFETY.INPUT.TEXT")
        else:
            hang(rule)

    def _moderate(self, task_id: str, failure_code: str) -> None:
        with self._lock:
            self._moderated.setdefault(task_id, failure_code)
        self._farm.cancel(task_id)  # moderation stopped it: the farm must not finish it

    def _retrieve(self, req: falcon.Request, task_id: str) -> dict[str, Any]:
        _authenticate(req)
        self._farm.count_poll()
        snapshot = self._mine(task_id)
        rule = take_fault(
            self._farm, FaultTarget.POLL, snapshot.spec.model if snapshot else None, NAME
        )
        if rule is not None and rule.kind is FaultKind.CONTENT_POLICY and snapshot is not None:
            self._moderate(snapshot.id, "SAFETY.OUTPUT.VIDEO")
        elif rule is not None:
            raise _fault_error(rule)
        if snapshot is None:
            raise RunwayError(404, "Task not found.")
        return self._task(snapshot)

    def _delete(self, req: falcon.Request, task_id: str) -> dict[str, Any]:
        _authenticate(req)
        snapshot = self._mine(task_id)
        if snapshot is None:
            raise RunwayError(404, "Task not found.")
        if self._task(snapshot)["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            with self._lock:
                self._deleted.add(snapshot.id)
        else:
            self._farm.cancel(snapshot.id)
            with self._lock:
                self._throttled_until.pop(snapshot.id, None)
        return {}

    def _organization(self, req: falcon.Request) -> dict[str, Any]:
        _authenticate(req)
        rule = take_fault(self._farm, FaultTarget.POLL, None, NAME)
        if rule is not None and rule.kind is not FaultKind.QUOTA:
            raise _fault_error(rule)
        mine = [s for s in self._farm.renders() if s.spec.dialect == NAME]
        usage: dict[str, dict[str, int]] = {}
        for snapshot in mine:
            usage.setdefault(snapshot.spec.model, {"dailyGenerations": 0})["dailyGenerations"] += 1
        spent = sum(s.spec.duration_seconds for s in mine)  # a credit a second, as a stand-in
        limits = {"maxConcurrentGenerations": 2, "maxDailyGenerations": 200}
        return {
            "creditBalance": 0 if rule is not None else max(CREDIT_BALANCE - spent, 0),
            "tier": {"maxMonthlyCreditSpend": 10_000, "models": {m: limits for m in MODELS}},
            "usage": {"models": usage},
        }

    def _mine(self, task_id: str) -> RenderSnapshot | None:
        snapshot = self._farm.get(task_id)
        with self._lock:
            deleted = task_id in self._deleted
        if snapshot is None or snapshot.spec.dialect != NAME or deleted:
            return None
        return snapshot

    def _task(self, snapshot: RenderSnapshot) -> dict[str, Any]:
        created = snapshot.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        task: dict[str, Any] = {"id": snapshot.id, "createdAt": created}
        with self._lock:
            moderated = self._moderated.get(snapshot.id)
            throttled = self._throttled_until.get(snapshot.id, 0.0) > time.monotonic()
        if moderated:  # a moderated task is finished: DELETE deletes it, never cancels it
            return {**task, "status": "FAILED", **_failure(moderated)}
        if throttled and snapshot.status is not Phase.CANCELED:
            return {**task, "status": "THROTTLED"}
        status = _STATUSES.get(snapshot.status, "RUNNING")
        task["status"] = status
        if status == "RUNNING":
            task["progress"] = round(snapshot.progress, 2)
        elif status == "SUCCEEDED":
            task["output"] = [output_url(snapshot)]
        elif status == "FAILED":
            task.update(_render_failure(snapshot))
        return task


def _answer(resp: falcon.Response, work: Any) -> bool:
    """Run ``work`` and answer its JSON, or its :class:`RunwayError` in Runway's envelope."""
    try:
        resp.media = work()
        return True
    except RunwayError as exc:
        resp.status = exc.status
        body: dict[str, Any] = {"error": exc.error}
        if exc.issues:
            body["issues"] = exc.issues
        body["docUrl"] = DOC_URL
        resp.media = body
        if exc.retry_after is not None:
            resp.set_header("Retry-After", str(exc.retry_after))
        return False


def _authenticate(req: falcon.Request) -> None:
    """The key first (401), then the version header every call must carry (400)."""
    if bearer(req) != credentials.RUNWAY_API_KEY:
        raise RunwayError(401, "The provided API key is not valid.")
    version = req.get_header("X-Runway-Version")
    if not version:
        raise RunwayError(400, "The X-Runway-Version header is required.")
    if version not in API_VERSIONS:
        raise RunwayError(
            400, "The API version that was provided in the X-Runway-Version header is not valid."
        )


def _spec(req: falcon.Request, body: dict[str, Any], *, image_task: bool) -> RenderSpec:
    model = body.get("model")
    rules = MODELS.get(model) if isinstance(model, str) else None
    ratios = None if rules is None else rules.image_ratios if image_task else rules.text_ratios
    if rules is None or not ratios:
        raise _invalid(
            "model", "invalid_union", "Invalid input: no matching model for this endpoint"
        )
    prompt = body.get("promptText")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise _invalid(
            "promptText", "invalid_type", "Expected a non-empty string up to 1000 characters"
        )
    ratio = body.get("ratio")
    if ratio not in ratios:
        options = "|".join(f"'{r}'" for r in sorted(ratios))
        raise _invalid("ratio", "invalid_value", f"Invalid option: expected one of {options}")
    duration = body.get("duration")
    if type(duration) is not int or duration not in rules.durations:
        raise _invalid(
            "duration", "invalid_type", "Expected an integer duration the model supports"
        )
    first, last = _frames(body.get("promptImage"), rules) if image_task else (None, None)
    return RenderSpec(
        model=str(model),
        prompt=prompt,
        duration_seconds=duration,
        aspect_ratio=str(ratio),
        image=describe_image(first),
        end_image=describe_image(last),
        dialect=NAME,
        origin=origin(req),
    )


def _frames(value: Any, rules: _ModelRules) -> tuple[str | None, str | None]:
    """``promptImage`` as a string or ``[{uri, position}]``: the first and last frame URIs."""
    if isinstance(value, str):
        return _checked_uri(value, "promptImage"), None
    if not isinstance(value, list) or not value:
        raise _invalid("promptImage", "invalid_type", "Expected a string or an array of images")
    frames: dict[str, str] = {}
    for index, item in enumerate(value):
        position = item.get("position") if isinstance(item, dict) else None
        if position not in rules.positions or position in frames:
            options = "|".join(f"'{p}'" for p in sorted(rules.positions))
            raise _invalid(
                f"promptImage.{index}.position",
                "invalid_value",
                f"Invalid option: expected one of {options}",
            )
        frames[position] = _checked_uri(item.get("uri"), f"promptImage.{index}.uri")
    return frames.get("first"), frames.get("last")


def _checked_uri(value: Any, field: str) -> str:
    """Runway's asset rules (docs assets/inputs): HTTPS on a domain name, or a data URI."""
    if not isinstance(value, str) or not value:
        raise _invalid(field, "invalid_type", "Expected a string")
    if value.startswith("data:"):
        if not value.startswith(IMAGE_TYPES) or ";base64," not in value:
            raise _invalid(field, "custom", "Unsupported asset type. Invalid data URI.")
        if len(value) > MAX_DATA_URI_BYTES:
            raise _invalid(field, "too_big", "Data URIs must be at most 5MB")
        return value
    parts = urlsplit(value)
    if len(value) > MAX_URL_CHARS or parts.scheme != "https" or not parts.hostname:
        raise _invalid(field, "custom", "Only HTTPS URLs are allowed.")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return value
    raise _invalid(field, "custom", "URLs must be hosted on a domain.")


def _issue(path: str, message: str, code: str = "custom") -> dict[str, Any]:
    keys: list[Any] = [int(p) if p.isdigit() else p for p in path.split(".")]
    return {"code": code, "path": keys, "message": message}


def _invalid(path: str, code: str, message: str) -> RunwayError:
    return RunwayError(400, "Validation of body failed", [_issue(path, message, code)])


_FAILURES = {
    "SAFETY.INPUT": "The prompt was flagged by content moderation.",
    "SAFETY.OUTPUT": "The output was flagged by content moderation.",
    "INTERNAL": "An internal error occurred while generating the output.",
    "THIRD_PARTY": "A third-party model provider is unavailable.",
}
#: The ``failureCode`` a render fault of each kind ends with.
_RENDER_FAILURE_CODES = {
    FaultKind.CONTENT_POLICY: "SAFETY.OUTPUT.VIDEO",
    FaultKind.INTERNAL: "INTERNAL.BAD_OUTPUT.CODE01",
    FaultKind.CAPACITY: "THIRD_PARTY.UNAVAILABLE",
}


def _failure(code: str) -> dict[str, str]:
    text = next((text for prefix, text in _FAILURES.items() if code.startswith(prefix)), None)
    return {"failure": text or "The task failed.", "failureCode": code}


def _render_failure(snapshot: RenderSnapshot) -> dict[str, str]:
    """Runway's ``failureCode`` for a render fault; a rule without a kind names its own."""
    kind = snapshot.fault_kind
    own_code = snapshot.error.code if snapshot.error else "INTERNAL"
    failure = _failure(_RENDER_FAILURE_CODES.get(kind, own_code) if kind else own_code)
    if snapshot.error is not None and snapshot.fault_kind is not FaultKind.CONTENT_POLICY:
        failure["failure"] = snapshot.error.message
    return failure


def _fault_error(rule: FaultRule) -> RunwayError:
    """Runway's own answer to a fault kind; a rule without one keeps its status and text."""
    if rule.kind in _FAULTS:
        status, text = _FAULTS[rule.kind]
        error = RunwayError(status, rule.message or text)
        if rule.kind is FaultKind.BAD_REQUEST:
            error.issues = [_issue("body", rule.describe())]
    else:
        error = RunwayError(rule.status or 500, rule.describe())
    error.retry_after = rule.retry_after
    return error
