"""Google Veo through the Gemini API (``generativelanguage.googleapis.com``), not Vertex AI.

Auth is the API key in ``x-goog-api-key``. A render is a long-running operation: ``POST
/v1beta/models/{model}:predictLongRunning`` answers ``{"name":
"models/<model>/operations/<id>"}``, that name is the handle, and ``GET /v1beta/{name}`` polls
it. Health is ``GET /v1beta/models?pageSize=1``.

Request and response field names follow googleapis/python-genai ``google/genai/models.py``
(``_GenerateVideosParameters_to_mldev``, ``_GenerateVideosConfig_to_mldev``,
``_Image_to_mldev``, ``_GenerateVideosOperation_from_mldev``, ``_Video_from_mldev``) at
6680718; the operation name format is the one in its ``tests/models/test_generate_videos.py``.
Quirks handled:

- Veo renders 4, 6 or 8 s and only 16:9 or 9:16: genhook's 5 s becomes 6 s and 10 s
  becomes 8 s (the catalog says so), and 1:1 is refused here as ``invalid_request``.
- Images go inline as base64 even when genhook has a public link: the Gemini API refuses
  URIs (python-genai raises on ``gcs_uri`` in Gemini API mode). A last frame needs a first.
- The operation only says ``done``: no queue position, no progress, so a running one is
  ``RENDERING``. Done with ``error`` (a ``google.rpc.Status``, gRPC code) is a failure, and
  so is done with no sample but ``raiMediaFilteredReasons`` (Responsible AI filtering).
- A failed operation is classified by :func:`_operation_failed`: a message that speaks of
  safety is ``content_policy`` [I: no list is published]; then the ``error.code``, a
  ``google.rpc.Code`` [C: the Status fields in python-genai, the code meanings in
  google/rpc/code.proto; 3P: a Veo operation failing ``{"code": 13, …}``]:
  ``INVALID_ARGUMENT``, ``NOT_FOUND``, ``FAILED_PRECONDITION``, ``OUT_OF_RANGE`` are
  ``invalid_request``; ``RESOURCE_EXHAUSTED`` (8) ``RENDER_CAPACITY``; ``INTERNAL`` (13),
  ``UNAVAILABLE`` (14, "most likely a transient condition" per code.proto),
  ``DEADLINE_EXCEEDED`` (4) and ``ABORTED`` (10) ``RENDER_TRANSIENT``; ``UNKNOWN`` (2) and
  the rest ``provider_failed``. Which of these Veo really ends a render with is [I]. A
  ``status`` name is read when the ``code`` is missing.
- The video URI (``…/v1beta/files/<id>:download?alt=media``) needs the API key to download;
  it is handed on as given, never with the key in it.
- Errors are Google's ``{"error": {code, message, status, details}}``. Every 429 says "You
  exceeded your current quota, please check your plan and billing details", per-minute
  throttling included, so the text cannot tell a throttle from an empty account: a 429 is
  quota exhausted only when its ``QuotaFailure`` names a per-day quota or the message says
  ``limit: 0`` (no quota on this tier); otherwise it is rate limited, retrying after
  ``RetryInfo.retryDelay``. A bad key is 400 ``INVALID_ARGUMENT`` with reason
  ``API_KEY_INVALID``, so it is classified as ``auth_failed`` before other 400s.
- No cancel endpoint and no idempotency key. Dynamic webhooks (``webhookConfig``) are sent
  when genhook has a callback URL; their signing scheme (an RS256 JWT per third parties)
  could not be confirmed from Google, so a callback is an unsigned hint to poll.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx

from backend.errors import (
    ProviderCapacity,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderQuotaExhausted,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTransient,
)
from backend.jobs.states import JobPhase
from backend.providers.base import (
    RENDER_CAPACITY,
    RENDER_TRANSIENT,
    BaseAdapter,
    CallbackHint,
    CallbackRejected,
    ImageInput,
    RenderRequest,
    RenderState,
    RenderStatus,
)
from backend.providers.http import ProviderHTTP, by_status, json_body, retry_after_seconds
from backend.settings import Settings

#: Durations Veo 3.x renders; genhook's are mapped to the nearest one not shorter (max 8).
VEO_DURATIONS = (4, 6, 8)
ASPECT_RATIOS = {"16:9", "9:16"}
RESOLUTION = "720p"
VIDEO_EVENT = "video.generated"

#: google.rpc.Code values an operation's ``error`` may carry, by what they mean for routing.
_RPC_INVALID = {3, 5, 9, 11}  # INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, OUT_OF_RANGE
_RPC_CAPACITY = {8}  # RESOURCE_EXHAUSTED
_RPC_TRANSIENT = {4, 10, 13, 14}  # DEADLINE_EXCEEDED, ABORTED, INTERNAL, UNAVAILABLE
_RPC_CODES = {
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
}
#: Words of Google's refusals on safety grounds [I: no list is published].
_SAFETY_WORDS = ("safety", "blocked", "usage guideline", "responsible ai", "sensitive", "violat")
_RETRY_IN = re.compile(r"retry in ([0-9.]+)s", re.IGNORECASE)


def build(settings: Settings, client: httpx.Client) -> GeminiAdapter | None:
    if not settings.gemini_api_key:
        return None
    return GeminiAdapter(
        client=client, base_url=settings.gemini_base_url, api_key=settings.gemini_api_key
    )


class GeminiAdapter(BaseAdapter):
    name = "gemini"
    supports_callbacks = True

    def __init__(self, *, client: httpx.Client, base_url: str, api_key: str) -> None:
        self._origin = httpx.URL(base_url).netloc
        self._api_key = api_key
        self._http = ProviderHTTP(
            client=client,
            base_url=base_url,
            headers={"x-goog-api-key": api_key},
            classify=_classify,
        )

    def output_headers(self, url: str) -> dict[str, str]:
        """The video's ``files/…:download`` URI needs the API key; only Google gets it."""
        if httpx.URL(url).netloc != self._origin:
            return {}
        return {"x-goog-api-key": self._api_key}

    def submit(self, request: RenderRequest) -> str:
        body = _create_body(request)
        path = f"/v1beta/models/{request.model}:predictLongRunning"
        operation = self._http.json("POST", path, json=body, creates=True)
        name = operation.get("name") if isinstance(operation, dict) else None
        if not isinstance(name, str) or "/operations/" not in name:
            # A 2xx was answered, so an operation may exist: as unknown as a lost answer.
            raise ProviderOutcomeUnknown("provider_bad_answer", "no operation name in the answer")
        return name

    def poll(self, task_id: str) -> RenderStatus:
        operation = self._http.json("GET", f"/v1beta/{task_id}")
        if not isinstance(operation, dict):
            raise ProviderTransient("provider_bad_answer", "the operation is not a JSON object")
        return _status_of(operation)

    def callback(self, headers: Mapping[str, str], raw_body: bytes) -> CallbackHint:
        """A ``video.generated`` event; only the operation name in it is used."""
        try:
            event = json.loads(raw_body)
        except ValueError:
            raise CallbackRejected("the body is not JSON") from None
        if not isinstance(event, dict) or event.get("type") != VIDEO_EVENT:
            raise CallbackRejected("not a video.generated event")
        data = event.get("data")
        name = data.get("id") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name:
            raise CallbackRejected("no operation name in the event")
        return CallbackHint(task_id=name, verified=False)

    def health(self) -> None:
        self._http.request("GET", "/v1beta/models", params={"pageSize": "1"})


def _create_body(request: RenderRequest) -> dict[str, Any]:
    if request.aspect_ratio not in ASPECT_RATIOS:
        raise ProviderRejected(
            "invalid_request", f"Veo renders 16:9 or 9:16, not {request.aspect_ratio}"
        )
    if request.end_image and not request.image:
        raise ProviderRejected("invalid_request", "Veo needs a first frame to use a last frame")
    instance: dict[str, Any] = {"prompt": request.prompt}
    if request.image:
        instance["image"] = _inline(request.image)
    if request.end_image:
        instance["lastFrame"] = _inline(request.end_image)
    body: dict[str, Any] = {
        "instances": [instance],
        "parameters": {
            "aspectRatio": request.aspect_ratio,
            "durationSeconds": _veo_duration(request.duration_seconds),
            "resolution": RESOLUTION,
        },
    }
    if request.callback_url:
        # python-genai copies WebhookConfig without aliases: snake_case ``user_metadata``.
        body["webhookConfig"] = {
            "uris": [request.callback_url],
            "user_metadata": {"genhook_job_id": request.job_id},
        }
    return body


def _veo_duration(seconds: int) -> int:
    """The shortest Veo duration that is at least ``seconds`` long, else the longest."""
    return next((d for d in VEO_DURATIONS if d >= seconds), VEO_DURATIONS[-1])


def _inline(image: ImageInput) -> dict[str, str]:
    return {"bytesBase64Encoded": image.base64(), "mimeType": image.content_type}


def _status_of(operation: Mapping[str, Any]) -> RenderStatus:
    if not operation.get("done"):
        return RenderStatus(RenderState.RUNNING, JobPhase.RENDERING)
    error = operation.get("error")
    if isinstance(error, dict):
        return _operation_failed(error)
    response = (operation.get("response") or {}).get("generateVideoResponse") or {}
    samples = response.get("generatedSamples") or [{}]
    uri = ((samples[0] if isinstance(samples[0], dict) else {}).get("video") or {}).get("uri")
    if isinstance(uri, str) and uri:
        return RenderStatus(RenderState.SUCCEEDED, JobPhase.FINISHING, output_url=uri)
    reasons = response.get("raiMediaFilteredReasons") or []
    if reasons:
        return _failed("content_policy", "Veo filtered the video: " + "; ".join(map(str, reasons)))
    return _failed("provider_failed", "Veo finished without a video")


def _operation_failed(error: Mapping[str, Any]) -> RenderStatus:
    code = error.get("code")
    if not isinstance(code, int):
        code = _RPC_CODES.get(str(error.get("status")))
    message = str(error.get("message") or "Veo reported a failure")
    detail = f"Veo error {code}: {message}"
    if _sounds_unsafe(message):
        return _failed("content_policy", detail)
    if code in _RPC_INVALID:
        return _failed("invalid_request", detail)
    if code in _RPC_CAPACITY:
        return _failed(RENDER_CAPACITY, detail)
    if code in _RPC_TRANSIENT:
        return _failed(RENDER_TRANSIENT, detail)
    return _failed("provider_failed", detail)


def _failed(code: str, message: str) -> RenderStatus:
    return RenderStatus(
        RenderState.FAILED, JobPhase.RENDERING, error_code=code, error_message=message
    )


def _sounds_unsafe(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _SAFETY_WORDS)


def _classify(response: httpx.Response) -> ProviderError:
    error = json_body(response).get("error")
    if not isinstance(error, dict):
        return by_status(response, "provider_error", response.reason_phrase)
    status = str(error.get("status") or "")
    message = str(error.get("message") or response.reason_phrase)
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    http_status = response.status_code
    detail = f"{status or http_status}: {message}"
    if status == "RESOURCE_EXHAUSTED" or http_status == 429:
        if _out_of_quota(message, details):
            return ProviderQuotaExhausted("quota_exhausted", detail, status=http_status)
        retry_after = _retry_delay(message, details) or retry_after_seconds(response)
        return ProviderRateLimited(
            "rate_limited", detail, status=http_status, retry_after_seconds=retry_after
        )
    if status == "UNAVAILABLE" or http_status == 503:
        retry_after = retry_after_seconds(response)
        return ProviderCapacity(
            "capacity", detail, status=http_status, retry_after_seconds=retry_after
        )
    if _key_refused(status, message, details) or http_status in (401, 403):
        return ProviderQuotaExhausted("auth_failed", detail, status=http_status)
    if status == "FAILED_PRECONDITION":  # billing not enabled, region not served
        slug = "quota_exhausted" if "billing" in message.lower() else "auth_failed"
        return ProviderQuotaExhausted(slug, detail, status=http_status)
    if http_status >= 500:
        return ProviderTransient("provider_error", detail, status=http_status)
    if status in ("INVALID_ARGUMENT", "NOT_FOUND", "OUT_OF_RANGE") or http_status in (400, 404):
        slug = "content_policy" if _sounds_unsafe(message) else "invalid_request"
        return ProviderRejected(slug, detail, status=http_status)
    return by_status(response, "provider_error", detail)


def _out_of_quota(message: str, details: list[dict[str, Any]]) -> bool:
    """A per-day quota, or none at all on this tier: waiting a minute will not help."""
    for detail in details:
        for violation in detail.get("violations") or []:
            if isinstance(violation, dict) and "PerDay" in str(violation.get("quotaId", "")):
                return True
    return "limit: 0" in message


def _retry_delay(message: str, details: list[dict[str, Any]]) -> float | None:
    """``RetryInfo.retryDelay`` ("26s"), or the "Please retry in 38.8s" of the message."""
    for detail in details:
        delay = detail.get("retryDelay")
        if str(detail.get("@type", "")).endswith("RetryInfo") and isinstance(delay, str):
            try:
                return float(delay.removesuffix("s"))
            except ValueError:
                pass
    match = _RETRY_IN.search(message)
    return float(match.group(1)) if match else None


def _key_refused(status: str, message: str, details: list[dict[str, Any]]) -> bool:
    if status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return True
    reasons = {str(d.get("reason")) for d in details}
    return "API_KEY_INVALID" in reasons or "api key not valid" in message.lower()
