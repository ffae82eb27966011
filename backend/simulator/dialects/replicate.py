"""Replicate's predictions API, as the simulator speaks it (see ``backend/providers/replicate.py``).

Faithful: bearer-token auth (``Token`` accepted too) with Replicate's 401 problem body;
``POST /v1/models/{owner}/{name}/predictions`` for official models and ``POST
/v1/predictions`` with ``version`` ("owner/name:id"); ``GET /v1/predictions/{id}``, ``POST
/v1/predictions/{id}/cancel``, ``GET /v1/account``, ``GET /v1/webhooks/default/secret``.
Errors are RFC 7807 problems (``application/problem+json``): 422 "Input validation failed"
with ``invalid_fields`` when the body or ``input`` breaks the model's schema (types are
checked: ``duration`` must be an integer; unknown top-level fields are refused), 402
"Insufficient credit", 429 with only a ``detail`` ("Request was throttled...") plus
``Retry-After``. The prediction object has ``status`` starting/processing/succeeded/failed/
canceled, tqdm lines in ``logs`` (the SDK's only progress source), ``output`` (a URL string,
as these models' output schema says), ``error`` (``... (E005)`` from the content filter),
``urls``, ``data_removed``. Render faults fail the prediction with Replicate's own
wording: ``capacity`` as "Prediction interrupted; please retry (code: PA)" (a preempted
worker), ``internal`` as "Director: unexpected error handling prediction (E8765)" [3P: both
as integrations quote them], any other as its message plus ``(E1000)``, Replicate's
"Unknown Error" [C: docs reference/error-codes]. Webhooks are the prediction object, sent
for the events in ``webhook_events_filter`` (default ``output`` + ``completed``; ``start``
when predict() begins, as replicate/cog's runner sends it) and signed per Standard Webhooks
with :data:`~backend.simulator.credentials.REPLICATE_WEBHOOK_SECRET`.

Simplified: ids are the farm's; ``started_at``/``completed_at`` repeat ``created_at`` and
there are no ``metrics``; ``Prefer: wait`` is ignored; only the models genhook routes to have
schemas (others are "not found"); Replicate moderates inside the prediction, but a
``content_policy`` submit fault answers a 422 saying the input was flagged [I]; capacity is
a 503 problem and an outage a Cloudflare 502 page [I]; outputs never expire.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import falcon
from standardwebhooks import Webhook

from backend.simulator.callbacks import CallbackDispatcher, OutgoingCallback
from backend.simulator.credentials import PREFIXES, REPLICATE_API_TOKEN, REPLICATE_WEBHOOK_SECRET
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

NAME = "replicate"
PREFIX = PREFIXES[NAME]

#: The farm's statuses in Replicate's words.
STATUSES = {
    **dict.fromkeys((Phase.QUEUED, Phase.PREPARING), "starting"),
    **dict.fromkeys((Phase.RENDERING, Phase.ENCODING, Phase.FINISHING), "processing"),
    **{phase: phase.value for phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED)},
}
TERMINAL = ("succeeded", "failed", "canceled")
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
#: What Replicate sends when ``webhook_events_filter`` is not given.
DEFAULT_WEBHOOK_EVENTS = frozenset({"output", "completed"})
BODY_FIELDS = {"input", "webhook", "webhook_events_filter", "webhook_completed", "stream"}
#: Steps of the fake tqdm bar written to ``logs``.
LOG_STEPS = 25
THROTTLE_SECONDS = 30
CONTENT_FILTER = "flagged as sensitive. Please try again with different inputs. (E005)"
UNAUTHENTICATED = ("Unauthenticated", "You did not pass a valid authentication token")


@dataclass(frozen=True)
class _Field:
    """One property of a model's input schema: its JSON type and allowed values."""

    kind: type
    required: bool = False
    choices: tuple[Any, ...] = ()


_WAN = {
    "prompt": _Field(str, required=True),
    "duration": _Field(int, choices=(5, 10)),
    "negative_prompt": _Field(str),
    "seed": _Field(int),
    "enable_prompt_expansion": _Field(bool),
}
#: Each model's input schema, from its replicate.com API page (Wan t2v ``size`` values from
#: the model's callers; 960*960 for 1:1 is Alibaba's, unconfirmed on Replicate [I]).
SCHEMAS: dict[str, dict[str, _Field]] = {
    "wan-video/wan-2.5-t2v": {
        **_WAN,
        "size": _Field(str, choices=("832*480", "480*832", "1280*720", "720*1280", "960*960")),
    },
    "wan-video/wan-2.5-i2v": {
        **_WAN,
        "image": _Field(str, required=True),
        "resolution": _Field(str, choices=("480p", "720p", "1080p")),
    },
    "bytedance/seedance-1-pro": {
        "prompt": _Field(str, required=True),
        "image": _Field(str),
        "last_frame_image": _Field(str),
        "duration": _Field(int, choices=tuple(range(2, 13))),
        "resolution": _Field(str, choices=("480p", "720p", "1080p")),
        "aspect_ratio": _Field(str, choices=("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")),
        "camera_fixed": _Field(bool),
        "seed": _Field(int),
    },
}
_JSON_TYPES = {str: "string", int: "integer", bool: "boolean", float: "number", list: "array"}


class _Problem(Exception):
    """An RFC 7807 answer; ``html`` replaces it with a proxy's page."""

    def __init__(
        self,
        status: int,
        title: str | None,
        detail: str,
        *,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
        html: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.retry_after, self.extra, self.html = retry_after, extra or {}, html


@dataclass(frozen=True)
class _Extras:
    """What a prediction object shows that the farm does not keep."""

    version: str
    input: dict[str, Any]
    webhook: str | None
    events: frozenset[str]


def mount(app: falcon.App, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
    predictions = _Predictions(farm, callbacks)
    app.add_route(PREFIX + "/v1/models/{owner}/{name}/predictions", predictions, suffix="model")
    app.add_route(PREFIX + "/v1/predictions", predictions)
    app.add_route(PREFIX + "/v1/predictions/{prediction_id}", predictions, suffix="one")
    app.add_route(PREFIX + "/v1/predictions/{prediction_id}/cancel", predictions, suffix="cancel")
    account = _Account()
    app.add_route(PREFIX + "/v1/account", account)
    app.add_route(PREFIX + "/v1/webhooks/default/secret", account, suffix="secret")
    app.add_error_handler(_Problem, _answer_problem)
    callbacks.register(NAME, predictions.webhook)


def _authenticate(req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
    scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
    if scheme.lower() not in ("bearer", "token") or token.strip() != REPLICATE_API_TOKEN:
        raise _Problem(401, *UNAUTHENTICATED)


@falcon.before(_authenticate)
class _Predictions:
    def __init__(self, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
        self._farm = farm
        self._callbacks = callbacks
        self._extras: dict[str, _Extras] = {}
        self._lock = threading.Lock()

    def on_post_model(
        self, req: falcon.Request, resp: falcon.Response, owner: str, name: str
    ) -> None:
        self._create(req, resp, f"{owner}/{name}", "hidden", _body(req), BODY_FIELDS)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _body(req)
        version = body.get("version")
        if not isinstance(version, str) or not version:
            raise _invalid([("required", "", "version is required")])
        model, _, version_id = version.partition(":")
        self._create(req, resp, model, version_id or "hidden", body, BODY_FIELDS | {"version"})

    def on_get_one(self, req: falcon.Request, resp: falcon.Response, prediction_id: str) -> None:
        self._farm.count_poll()
        snapshot = self._farm.get(prediction_id)
        model = None if snapshot is None else snapshot.spec.model
        rule = take_fault(self._farm, FaultTarget.POLL, model, NAME)
        if rule is not None:
            raise _fault(rule)
        resp.media = self._prediction(_found(snapshot))

    def on_post_cancel(
        self, req: falcon.Request, resp: falcon.Response, prediction_id: str
    ) -> None:
        resp.media = self._prediction(_found(self._farm.cancel(prediction_id)))

    def webhook(self, snapshot: RenderSnapshot, previous: Phase | None) -> OutgoingCallback | None:
        """The signed POST Replicate makes for this change, if the events filter asks for it."""
        extras = self._extras_of(snapshot.id)
        if extras is None or extras.webhook is None:
            return None
        if not _events_of(snapshot, previous) & extras.events:
            return None
        body = json.dumps(self._prediction(snapshot)).encode()
        return OutgoingCallback(extras.webhook, body, _signature_headers(body))

    def _create(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        model: str,
        version: str,
        body: dict[str, Any],
        allowed: set[str],
    ) -> None:
        self._farm.count_submit()
        rule = take_fault(self._farm, FaultTarget.SUBMIT, model, NAME)
        if rule is not None and rule.kind is not FaultKind.HANG_AFTER_CREATE:
            raise _fault(rule)
        schema = SCHEMAS.get(model)
        if schema is None and "version" in allowed:
            raise _Problem(
                422,
                "Invalid version or not permitted",
                "The specified version does not exist (or perhaps you don't have permission"
                " to use it?)",
            )
        if schema is None:
            raise _Problem(404, None, "Not found.")
        problems = _check_body(body, allowed) or _check_input(body["input"], schema)
        if problems:
            raise _invalid(problems)
        snapshot = self._start(req, model, version, body)
        if rule is not None:
            hang(rule)
        resp.status = 201
        resp.media = self._prediction(snapshot)

    def _start(
        self, req: falcon.Request, model: str, version: str, body: dict[str, Any]
    ) -> RenderSnapshot:
        given, webhook = body["input"], body.get("webhook")
        spec = RenderSpec(
            model=model,
            prompt=given["prompt"],
            duration_seconds=given.get("duration", 5),
            aspect_ratio=_aspect_ratio(given),
            image=describe_image(given.get("image")),
            end_image=describe_image(given.get("last_frame_image")),
            dialect=NAME,
            callback_url=webhook,
            origin=origin(req),
        )
        snapshot, _ = self._farm.submit(spec)  # Replicate has no idempotency key
        events = body.get("webhook_events_filter")
        events_set = DEFAULT_WEBHOOK_EVENTS if events is None else frozenset(events)
        with self._lock:
            self._extras[snapshot.id] = _Extras(version, given, webhook, events_set)
        if webhook:
            self._callbacks.watch(snapshot.id)
        return snapshot

    def _extras_of(self, prediction_id: str) -> _Extras | None:
        with self._lock:
            return self._extras.get(prediction_id)

    def _prediction(self, snapshot: RenderSnapshot) -> dict[str, Any]:
        extras = self._extras_of(snapshot.id) or _Extras("hidden", {}, None, frozenset())
        status = STATUSES[snapshot.status]
        get_url = f"{snapshot.spec.origin}{PREFIX}/v1/predictions/{snapshot.id}"
        created = snapshot.created_at.isoformat().replace("+00:00", "Z")
        prediction: dict[str, Any] = {
            "id": snapshot.id,
            "model": snapshot.spec.model,
            "version": extras.version,
            "input": extras.input,
            "logs": _logs(snapshot),
            "output": output_url(snapshot) if status == "succeeded" else None,
            "data_removed": False,
            "error": _error(snapshot),
            "status": status,
            "source": "api",
            "created_at": created,
            "started_at": None if status == "starting" else created,
            "completed_at": created if status in TERMINAL else None,
            "urls": {
                "get": get_url,
                "cancel": get_url + "/cancel",
                "web": f"https://replicate.com/p/{snapshot.id}",
            },
        }
        if extras.webhook:
            prediction["webhook"] = extras.webhook
            prediction["webhook_events_filter"] = sorted(extras.events)
        return prediction


@falcon.before(_authenticate)
class _Account:
    """The account behind the token, and its default webhook signing secret."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"type": "organization", "username": "genhook-sim", "name": "genhook sim"}

    def on_get_secret(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"key": REPLICATE_WEBHOOK_SECRET}


# -- errors -----------------------------------------------------------------------------------


def _answer_problem(
    req: falcon.Request, resp: falcon.Response, problem: _Problem, params: dict[str, Any]
) -> None:
    resp.status = problem.status
    if problem.retry_after is not None:
        resp.set_header("Retry-After", str(problem.retry_after))
    if problem.html is not None:
        resp.content_type, resp.text = "text/html", problem.html
        return
    body: dict[str, Any] = {"detail": problem.detail}
    if problem.status != 429:  # Replicate's throttling answer is the detail alone
        body.update(status=problem.status, **({"title": problem.title} if problem.title else {}))
    resp.content_type = "application/problem+json"
    resp.text = json.dumps({**body, **problem.extra})


def _invalid(problems: list[tuple[str, str, str]]) -> _Problem:
    """Replicate's 422 for a body that breaks the schema: one ``- field: text`` line each."""
    detail = "".join(
        f"- {where}: {text}\n" if where else f"- {text}\n" for _, where, text in problems
    )
    fields = [{"type": kind, "field": where, "description": text} for kind, where, text in problems]
    return _Problem(422, "Input validation failed", detail, extra={"invalid_fields": fields})


def _body(req: falcon.Request) -> dict[str, Any]:
    try:
        return read_json(req)
    except BadBody as exc:
        raise _Problem(400, "Bad request", str(exc)) from None


def _found(snapshot: RenderSnapshot | None) -> RenderSnapshot:
    if snapshot is None or snapshot.spec.dialect != NAME:
        raise _Problem(404, None, "Not found.")
    return snapshot


#: Each fault kind as Replicate answers it: status, title, detail.
_FAULTS: dict[FaultKind, tuple[int, str | None, str]] = {
    FaultKind.CAPACITY: (503, "Service Unavailable", "No capacity is available right now."),
    FaultKind.QUOTA: (
        402,
        "Insufficient credit",
        "You have insufficient credit to run this model. Go to "
        "https://replicate.com/account/billing#billing to purchase credit.",
    ),
    FaultKind.AUTH: (401, *UNAUTHENTICATED),
    FaultKind.SERVER_ERROR: (500, "Internal Server Error", "An unexpected error occurred."),
    FaultKind.BAD_REQUEST: (422, "Input validation failed", "- input: prompt is required\n"),
    FaultKind.CONTENT_POLICY: (422, "Input rejected", f"The input was {CONTENT_FILTER}"),
    FaultKind.HANG: (504, "Gateway Timeout", "The request timed out."),
    FaultKind.INTERNAL: (500, "Internal Server Error", "An unexpected error occurred."),
}
_CLOUDFLARE_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    "</h1></center><hr><center>cloudflare</center></body></html>"
)


def _fault(rule: FaultRule) -> _Problem:
    if rule.kind is FaultKind.RATE_LIMITED:
        wait = THROTTLE_SECONDS if rule.retry_after is None else rule.retry_after
        detail = f"Request was throttled. Your rate limit resets in ~{wait}s."
        return _Problem(429, None, detail, retry_after=wait)
    if rule.kind is FaultKind.UNAVAILABLE:
        return _Problem(502, None, "Bad Gateway", html=_CLOUDFLARE_502)
    if rule.kind in _FAULTS:
        status, title, detail = _FAULTS[rule.kind]
        retry_after = rule.retry_after if status == 503 else None
        return _Problem(status, title, rule.message or detail, retry_after=retry_after)
    assert rule.status is not None  # submit/poll rules always carry one
    return _Problem(rule.status, rule.code, rule.describe(), retry_after=rule.retry_after)


# -- validation -------------------------------------------------------------------------------


def _check_body(body: dict[str, Any], allowed: set[str]) -> list[tuple[str, str, str]]:
    problems = [
        ("additional_property_not_allowed", "", f"Additional property {key} is not allowed")
        for key in sorted(body.keys() - allowed)
    ]
    if not isinstance(body.get("input"), dict):
        problems.append(("required", "", "input is required"))
    webhook = body.get("webhook")
    if webhook is not None and not str(webhook).startswith(("http://", "https://")):
        problems.append(("format", "webhook", "Does not match format 'uri'"))
    events = body.get("webhook_events_filter")
    if events is not None and not (
        isinstance(events, list) and all(e in WEBHOOK_EVENTS for e in events)
    ):
        problems.append(("enum", "webhook_events_filter", f"items must be in {WEBHOOK_EVENTS}"))
    return problems


def _check_input(given: dict[str, Any], schema: dict[str, _Field]) -> list[tuple[str, str, str]]:
    problems = [
        ("required", "input", f"{name} is required")
        for name, spec in schema.items()
        if spec.required and name not in given
    ]
    for name, value in given.items():
        spec = schema.get(name)  # Replicate ignores properties the schema does not have
        problem = None if spec is None else _check_value(name, value, spec)
        if problem is not None:
            problems.append((problem[0], f"input.{name}", problem[1]))
    return problems


def _check_value(name: str, value: Any, spec: _Field) -> tuple[str, str] | None:
    if type(value) is not spec.kind:  # a bool is not an integer, nor 5.0 or "5"
        given = _JSON_TYPES.get(type(value), "object" if isinstance(value, dict) else "null")
        return "invalid_type", f"Invalid type. Expected: {_JSON_TYPES[spec.kind]}, given: {given}"
    if spec.choices and value not in spec.choices:
        options = ", ".join(json.dumps(choice) for choice in spec.choices)
        return "enum", f"{name} must be one of the following: {options}"
    return None


def _aspect_ratio(given: dict[str, Any]) -> str:
    """Wan's pixel ``size`` as a ratio, else Seedance's ``aspect_ratio``; with an image
    the video takes the image's shape."""
    if isinstance(size := given.get("size"), str):
        width, height = (int(n) for n in size.split("*"))
        return "16:9" if width > height else "9:16" if width < height else "1:1"
    return "adaptive" if "image" in given else str(given.get("aspect_ratio", "16:9"))


# -- the prediction object --------------------------------------------------------------------


def _logs(snapshot: RenderSnapshot) -> str:
    """A tqdm bar as a model's predict() prints it, one line per step reached."""
    if STATUSES[snapshot.status] == "starting":
        return ""
    lines = []
    for step in range(min(LOG_STEPS, int(snapshot.progress * LOG_STEPS)) + 1):
        percent = step * 100 // LOG_STEPS
        bar = ("█" * (percent // 10)).ljust(10)
        lines.append(f"{percent:3d}%|{bar}| {step}/{LOG_STEPS} [00:00<00:00, 2.00it/s]")
    return "\n".join(lines)


#: ``error`` of a prediction that failed of a render fault of each kind (module docstring).
_RENDER_ERRORS = {
    FaultKind.CONTENT_POLICY: f"The input or output was {CONTENT_FILTER}",
    FaultKind.CAPACITY: "Prediction interrupted; please retry (code: PA)",
    FaultKind.INTERNAL: "Director: unexpected error handling prediction (E8765)",
}


def _error(snapshot: RenderSnapshot) -> str | None:
    if snapshot.status is not Phase.FAILED or snapshot.error is None:
        return None
    kind = snapshot.fault_kind
    if kind is not None and kind in _RENDER_ERRORS:
        return _RENDER_ERRORS[kind]
    return f"{snapshot.error.message} (E1000)"


def _events_of(snapshot: RenderSnapshot, previous: Phase | None) -> set[str]:
    """Which webhook events a change is. As cog's runner does: ``start`` when predict()
    begins (the body already says ``processing``), ``logs`` as the bar moves, ``completed``
    at the end (with ``output``: these video models output only then)."""
    status = STATUSES[snapshot.status]
    if status in TERMINAL:
        return {"completed", "output"} if status == "succeeded" else {"completed"}
    if status != "processing":
        return set()
    return {"logs"} if previous is not None and STATUSES[previous] == status else {"start"}


def _signature_headers(body: bytes) -> dict[str, str]:
    """Standard Webhooks headers, as Replicate signs every webhook request."""
    message_id = f"msg_{secrets.token_hex(12)}"
    now = datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(REPLICATE_WEBHOOK_SECRET).sign(message_id, now, body.decode()),
    }
