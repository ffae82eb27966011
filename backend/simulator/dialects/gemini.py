"""Google Veo via the Gemini API, as the simulator speaks it (``backend/providers/gemini.py``).

Faithful: the paths (``models/{model}:predictLongRunning``, ``GET v1beta/{operation name}``,
``models`` list/get, ``files/{id}:download?alt=media``), the key in ``x-goog-api-key`` or
``?key=`` (a wrong key is Google's 400 ``API_KEY_INVALID``, a missing one 403
``PERMISSION_DENIED``), the ``{"error": {code, message, status, details}}`` envelope with
``QuotaFailure``/``RetryInfo`` details on 429 (Google sends no ``Retry-After`` header), the
request body as python-genai's ``_GenerateVideosParameters_to_mldev`` writes it, inline
base64 images only (``gcsUri`` refused), the operation name
``models/<model>/operations/<id>`` (format of python-genai's ``test_generate_videos.py``),
``done`` absent while running, then ``response.generateVideoResponse.generatedSamples`` or
``error`` (a ``google.rpc.Status``: gRPC code, not HTTP), RAI-filtered renders done with no
sample and ``raiMediaFilteredReasons``, and a video URI that needs the API key to download.
Render faults: ``content_policy`` is RAI filtering, ``capacity`` an ``error`` with code 8
``RESOURCE_EXHAUSTED``, ``internal`` 13 ``INTERNAL``, any other 2 ``UNKNOWN`` [I: which codes
Veo really fails a render with].
Inferred [I]: the exact validation messages, and that a string ``durationSeconds`` is
refused. Webhooks (``webhookConfig``): a Standard Webhooks POST of a ``video.generated``
event when the operation is done; the ``webhook-signature`` is an RS256 JWT from a
simulator key published at ``PREFIX/.well-known/jwks.json`` as third parties describe
dynamic webhooks [3P]; its claims are invented, since Google's own description could not
be read. Simplified: one API key; one sample per render; webhooks go to the first URI only.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import falcon
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from backend.simulator import credentials
from backend.simulator.callbacks import CallbackDispatcher, OutgoingCallback
from backend.simulator.dialects.common import (
    BadBody,
    describe_image,
    download_fault,
    hang,
    origin,
    read_json,
    sample_video,
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

NAME = "gemini"
PREFIX = credentials.PREFIXES[NAME]

MODELS = {
    "veo-3.1-generate-preview",
    "veo-3.1-fast-generate-preview",
    "veo-3.1-lite-generate-preview",
    "veo-3.0-generate-001",
    "veo-3.0-fast-generate-001",
    "veo-2.0-generate-001",
}
ASPECT_RATIOS = {"16:9", "9:16"}
RESOLUTIONS = {"720p", "1080p"}
MIME_TYPES = {"image/png", "image/jpeg", "image/webp"}
#: Parameters the Gemini API refuses (python-genai raises on them client-side: Vertex only).
VERTEX_ONLY = {"seed", "fps", "generateAudio", "storageUri", "pubsubTopic", "compressionQuality"}
RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
RAI_REASON = (
    "Veo could not generate videos because the input or the output may violate Google's "
    "Responsible AI practices. Support codes: 17301594"
)
#: Farm render ids are ``rnd_<hex>``; Google's ids are lowercase alphanumerics only.
RENDER_ID_PREFIX = "rnd"
JWT_KEY_ID = "sim-gemini-webhooks-1"

_RPC_TYPE = "type.googleapis.com/google.rpc"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
_FAULTS: dict[FaultKind, tuple[int, str]] = {
    FaultKind.RATE_LIMITED: (429, _QUOTA_MESSAGE),
    FaultKind.QUOTA: (429, _QUOTA_MESSAGE),
    FaultKind.CAPACITY: (503, "The model is overloaded. Please try again later."),
    FaultKind.UNAVAILABLE: (503, "The service is currently unavailable."),
    FaultKind.AUTH: (400, "API key not valid. Please pass a valid API key."),
    FaultKind.SERVER_ERROR: (500, "An internal error has occurred. Please retry."),
    FaultKind.INTERNAL: (500, "An internal error has occurred. Please retry."),
    FaultKind.BAD_REQUEST: (400, "Request contains an invalid argument."),
    FaultKind.CONTENT_POLICY: (400, "The prompt was blocked: it may violate usage guidelines."),
    FaultKind.HANG: (504, "Deadline expired before operation could complete."),
}


class GoogleError(Exception):
    def __init__(self, status: int, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details or []


def mount(app: falcon.App, farm: RenderFarm, callbacks: CallbackDispatcher) -> None:
    webhooks = _Webhooks()
    api = _Api(farm, callbacks, webhooks)
    app.add_route(f"{PREFIX}/v1beta/models", api, suffix="models")
    app.add_route(f"{PREFIX}/v1beta/models/{{model}}:predictLongRunning", api, suffix="create")
    app.add_route(
        f"{PREFIX}/v1beta/models/{{model}}/operations/{{operation_id}}", api, suffix="operation"
    )
    app.add_route(f"{PREFIX}/v1beta/files/{{file_id}}:download", api, suffix="download")
    app.add_route(f"{PREFIX}/.well-known/jwks.json", api, suffix="jwks")
    callbacks.register(NAME, webhooks.build)


class _Api:
    def __init__(self, farm: RenderFarm, callbacks: CallbackDispatcher, webhooks: _Webhooks):
        self._farm = farm
        self._callbacks = callbacks
        self._webhooks = webhooks

    def on_get_models(self, req: falcon.Request, resp: falcon.Response) -> None:
        def listing() -> dict[str, Any]:
            _authenticate(req)
            size = req.get_param_as_int("pageSize", default=50, min_value=1, max_value=1000)
            methods = ["predictLongRunning"]
            models = [
                {"name": f"models/{m}", "supportedGenerationMethods": methods} for m in MODELS
            ]
            return {"models": sorted(models, key=lambda m: str(m["name"]))[:size]}

        _answer(resp, listing)

    def on_post_create(self, req: falcon.Request, resp: falcon.Response, model: str) -> None:
        _answer(resp, lambda: self._create(req, model))

    def on_get_operation(
        self, req: falcon.Request, resp: falcon.Response, model: str, operation_id: str
    ) -> None:
        _answer(resp, lambda: self._operation(req, model, operation_id))

    def on_get_download(self, req: falcon.Request, resp: falcon.Response, file_id: str) -> None:
        try:
            _authenticate(req)
            snapshot = self._farm.get(_render_id(file_id))
            if snapshot is None or snapshot.status is not Phase.SUCCEEDED:
                raise GoogleError(404, f"File files/{file_id} not found.")
        except GoogleError as exc:
            _error(resp, exc)
            return
        if download_fault(self._farm, snapshot, resp):
            return
        resp.content_type = "video/mp4"
        resp.data = sample_video()

    def on_get_jwks(self, req: falcon.Request, resp: falcon.Response) -> None:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(_signing_key().public_key(), as_dict=True)
        resp.media = {"keys": [{**jwk, "kid": JWT_KEY_ID, "alg": "RS256", "use": "sig"}]}

    def _create(self, req: falcon.Request, model: str) -> dict[str, Any]:
        _authenticate(req)
        self._farm.count_submit()
        try:
            body = read_json(req)
        except BadBody as exc:
            raise GoogleError(400, f"Invalid JSON payload received. {exc}") from None
        rule = take_fault(self._farm, FaultTarget.SUBMIT, model, NAME)
        if rule is not None and rule.kind is not FaultKind.HANG_AFTER_CREATE:
            raise _fault_error(rule)
        spec, user_metadata = _spec(req, _known(model), body)
        snapshot, _ = self._farm.submit(spec)
        if spec.callback_url:
            self._webhooks.remember(snapshot.id, user_metadata)
            self._callbacks.watch(snapshot.id)
        if rule is not None:
            hang(rule)
        return {"name": _operation_name(snapshot)}

    def _operation(self, req: falcon.Request, model: str, operation_id: str) -> dict[str, Any]:
        _authenticate(req)
        self._farm.count_poll()
        snapshot = self._farm.get(_render_id(operation_id))
        rule = take_fault(
            self._farm, FaultTarget.POLL, snapshot.spec.model if snapshot else None, NAME
        )
        if rule is not None:
            raise _fault_error(rule)
        if snapshot is None or snapshot.spec.dialect != NAME or snapshot.spec.model != model:
            raise GoogleError(404, f"Operation models/{model}/operations/{operation_id} not found.")
        return _operation_json(snapshot)


def _answer(resp: falcon.Response, work: Any) -> None:
    try:
        resp.media = work()
    except GoogleError as exc:
        _error(resp, exc)


def _error(resp: falcon.Response, exc: GoogleError) -> None:
    resp.status = exc.status
    error: dict[str, Any] = {
        "code": exc.status,
        "message": exc.message,
        "status": _STATUS_NAMES.get(exc.status, "UNKNOWN"),
    }
    if exc.details:
        error["details"] = exc.details
    resp.media = {"error": error}


def _authenticate(req: falcon.Request) -> None:
    key = req.get_header("x-goog-api-key") or req.get_param("key")
    if not key:
        raise GoogleError(
            403,
            "Method doesn't allow unregistered callers (callers without established identity)."
            " Please use API Key or other form of API consumer identity to call this API.",
        )
    if not secrets.compare_digest(key, credentials.GEMINI_API_KEY):
        raise _bad_key()


def _bad_key() -> GoogleError:
    info = {
        "@type": f"{_RPC_TYPE}.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    return GoogleError(400, "API key not valid. Please pass a valid API key.", [info])


def _known(model: str) -> str:
    if model not in MODELS:
        raise GoogleError(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for "
            "predictLongRunning. Call ListModels to see the list of available models.",
        )
    return model


def _spec(
    req: falcon.Request, model: str, body: dict[str, Any]
) -> tuple[RenderSpec, dict[str, Any] | None]:
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1:
        raise GoogleError(400, "* instances: exactly one instance is required.")
    instance, parameters = instances[0], body.get("parameters", {})
    if not isinstance(instance, dict) or not isinstance(parameters, dict):
        raise GoogleError(400, "Invalid value at 'instances[0]' or 'parameters': not an object.")
    prompt = instance.get("prompt", "")
    if not isinstance(prompt, str):
        raise GoogleError(400, "Invalid value at 'instances[0].prompt' (TYPE_STRING).")
    image, last_frame = _image(instance, "image"), _image(instance, "lastFrame")
    if not prompt.strip() and image is None:
        raise GoogleError(400, "A prompt or an image is required.")
    if last_frame is not None and image is None:
        raise GoogleError(400, "`lastFrame` is only supported together with `image`.")
    duration, aspect_ratio = _parameters(model, parameters)
    callback_url, user_metadata = _webhook_config(body.get("webhookConfig"))
    spec = RenderSpec(
        model=model,
        prompt=prompt,
        duration_seconds=duration,
        aspect_ratio=aspect_ratio,
        image=describe_image(image),
        end_image=describe_image(last_frame),
        dialect=NAME,
        callback_url=callback_url,
        origin=origin(req),
    )
    return spec, user_metadata


def _parameters(model: str, parameters: dict[str, Any]) -> tuple[int, str]:
    unsupported = sorted(VERTEX_ONLY & parameters.keys())
    if unsupported:
        raise GoogleError(
            400,
            f"`{unsupported[0]}` isn't supported by this model. Please remove it or refer to "
            "the Gemini API documentation for supported usage.",
        )
    allowed = (5, 6, 7, 8) if model.startswith("veo-2") else (4, 6, 8)
    duration = parameters.get("durationSeconds", 8)
    if not isinstance(duration, int) or isinstance(duration, bool):
        raise GoogleError(
            400,
            f"Invalid value at 'parameters.durationSeconds' (TYPE_INT32), {json.dumps(duration)}",
        )
    if duration not in allowed:
        raise GoogleError(400, f"`durationSeconds` must be one of {allowed} for {model}.")
    aspect_ratio = parameters.get("aspectRatio", "16:9")
    if aspect_ratio not in ASPECT_RATIOS:
        raise GoogleError(400, f"Aspect ratio {aspect_ratio} is not supported: use 16:9 or 9:16.")
    resolution = parameters.get("resolution", "720p")
    if resolution not in RESOLUTIONS or (resolution == "1080p" and duration != 8):
        raise GoogleError(400, f"Resolution {resolution} is not supported for this request.")
    return duration, str(aspect_ratio)


def _image(instance: dict[str, Any], field: str) -> str | None:
    value = instance.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise GoogleError(400, f"Invalid value at 'instances[0].{field}': not an object.")
    if "gcsUri" in value:
        raise GoogleError(
            400,
            "`gcsUri` isn't supported by this model. Please remove it or refer to the Gemini "
            "API documentation for supported usage.",
        )
    data, mime_type = value.get("bytesBase64Encoded"), value.get("mimeType")
    if not isinstance(data, str) or not data:
        raise GoogleError(400, f"instances[0].{field}.bytesBase64Encoded is required.")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise GoogleError(
            400, f"Invalid value at 'instances[0].{field}.bytes_base64_encoded' (TYPE_BYTES)"
        ) from None
    if mime_type not in MIME_TYPES:
        raise GoogleError(400, f"Unsupported mimeType for instances[0].{field}: {mime_type!r}.")
    return data


def _webhook_config(value: Any) -> tuple[str | None, dict[str, Any] | None]:
    if value is None:
        return None, None
    uris = value.get("uris") if isinstance(value, dict) else None
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise GoogleError(400, "webhookConfig.uris must be a non-empty list of URIs.")
    # python-genai sends the snake_case name (model_dump without aliases); accept both.
    metadata = value.get("user_metadata", value.get("userMetadata"))
    if metadata is not None and not isinstance(metadata, dict):
        raise GoogleError(400, "webhookConfig.user_metadata must be an object.")
    return uris[0], metadata


def _operation_json(snapshot: RenderSnapshot) -> dict[str, Any]:
    operation: dict[str, Any] = {"name": _operation_name(snapshot)}
    status = snapshot.status
    if status not in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED):
        return operation
    operation["done"] = True
    if status is Phase.SUCCEEDED:
        sample = {"video": {"uri": _file_uri(snapshot)}}
        operation["response"] = _response({"generatedSamples": [sample]})
    elif status is Phase.FAILED and snapshot.fault_kind is FaultKind.CONTENT_POLICY:
        operation["response"] = _response(
            {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": [RAI_REASON]}
        )
    elif status is Phase.FAILED:
        operation["error"] = _render_error(snapshot)
    else:
        operation["error"] = {"code": 1, "message": "The operation was cancelled."}
    return operation


#: The ``google.rpc.Status`` a render fault of each kind ends the operation with (code,
#: message; an empty message is the rule's). Any other render fault is 2, ``UNKNOWN``.
_RENDER_ERRORS: dict[FaultKind, tuple[int, str]] = {
    FaultKind.CAPACITY: (8, "Resource has been exhausted: the model is overloaded."),
    FaultKind.INTERNAL: (13, ""),
}


def _render_error(snapshot: RenderSnapshot) -> dict[str, Any]:
    kind = snapshot.fault_kind
    code, text = _RENDER_ERRORS.get(kind, (2, "")) if kind is not None else (2, "")
    return {"code": code, "message": text or (snapshot.error.message if snapshot.error else "")}


def _response(generate_video_response: dict[str, Any]) -> dict[str, Any]:
    return {"@type": RESPONSE_TYPE, "generateVideoResponse": generate_video_response}


def _operation_name(snapshot: RenderSnapshot) -> str:
    return f"models/{snapshot.spec.model}/operations/{_public_id(snapshot.id)}"


def _file_uri(snapshot: RenderSnapshot) -> str:
    file_id = _public_id(snapshot.id)
    return f"{snapshot.spec.origin}{PREFIX}/v1beta/files/{file_id}:download?alt=media"


def _public_id(render_id: str) -> str:
    return render_id.replace("_", "")


def _render_id(public_id: str) -> str:
    return f"{RENDER_ID_PREFIX}_{public_id.removeprefix(RENDER_ID_PREFIX)}"


def _fault_error(rule: FaultRule) -> GoogleError:
    if rule.kind is FaultKind.AUTH:
        return _bad_key()
    # With a kind, the rule's status is the native protocol's default: Google's is used.
    if rule.kind is not None and rule.kind in _FAULTS:
        status, message = _FAULTS[rule.kind]
    else:
        status, message = rule.status or 500, rule.describe()
    details = _quota_details(rule) if status == 429 else None
    return GoogleError(status, rule.message or message, details)


def _quota_details(rule: FaultRule) -> list[dict[str, Any]]:
    """What a Gemini 429 carries: which quota ran out and, for per-minute ones, when to retry."""
    daily = rule.kind is FaultKind.QUOTA
    violation = {
        "quotaMetric": "generativelanguage.googleapis.com/predict_long_running_requests",
        "quotaId": f"PredictLongRunningRequestsPer{'Day' if daily else 'Minute'}PerProjectPerModel",
        "quotaDimensions": {"location": "global", "model": rule.model or "veo"},
    }
    details = [{"@type": f"{_RPC_TYPE}.QuotaFailure", "violations": [violation]}]
    if not daily:
        delay = 30 if rule.retry_after is None else rule.retry_after
        details.append({"@type": f"{_RPC_TYPE}.RetryInfo", "retryDelay": f"{delay}s"})
    return details


class _Webhooks:
    """Dynamic webhooks: one ``video.generated`` event when an operation is done."""

    def __init__(self) -> None:
        self._metadata: dict[str, dict[str, Any] | None] = {}

    def remember(self, render_id: str, user_metadata: dict[str, Any] | None) -> None:
        self._metadata[render_id] = user_metadata

    def build(self, snapshot: RenderSnapshot, previous: Phase | None) -> OutgoingCallback | None:
        url = snapshot.spec.callback_url
        if url is None or snapshot.status not in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED):
            return None
        data: dict[str, Any] = {"id": _operation_name(snapshot)}
        if snapshot.status is Phase.SUCCEEDED:
            data["video_uri"] = _file_uri(snapshot)
        metadata = self._metadata.pop(snapshot.id, None)
        if metadata is not None:
            data["user_metadata"] = metadata
        now = int(time.time())
        event = {
            "type": "video.generated",
            "timestamp": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "data": data,
        }
        # Invented claims [3P: an RS256 JWT checked against Google's JWKS, aud = endpoint].
        claims = {"iss": snapshot.spec.origin + PREFIX, "aud": url, "iat": now, "exp": now + 300}
        headers = {
            "webhook-id": f"msg_{secrets.token_hex(12)}",
            "webhook-timestamp": str(now),
            "webhook-signature": jwt.encode(
                claims, _signing_key(), algorithm="RS256", headers={"kid": JWT_KEY_ID}
            ),
        }
        return OutgoingCallback(url, json.dumps(event).encode(), headers)


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
