"""BytePlus ModelArk's content generation tasks: ByteDance's Seedance video models.

Auth is a static API key sent as ``Authorization: Bearer <key>``; the base URL
(``https://ark.ap-southeast.bytepluses.com/api/v3``) already ends in ``/api/v3``. Paths used:
``POST /contents/generations/tasks`` (create), ``GET /contents/generations/tasks/{id}``
(status), ``DELETE /contents/generations/tasks/{id}`` (cancel) and
``GET /contents/generations/tasks?page_size=1`` (health).

Quirks handled (sources: byteplus-sdk/byteplus-python-sdk-v2 88f68a3,
``byteplussdkarkruntime/resources/content_generation/tasks.py`` and
``types/content_generation/*.py`` [C]; BytePlus's docs as copied by docs.powertokens.ai and
docs.ai-tokenhub.com [3P]; ModelArk's "Common Error Codes" page,
docs.byteplus.com/docs/ModelArk/1299023 [C]):

- The prompt and the frames are parts of one ``content`` array (``text`` and ``image_url``
  parts with ``role`` ``first_frame``/``last_frame``); ``ratio``, ``duration`` (integer
  seconds) and ``resolution`` are top-level body fields, as the SDK's ``create()`` sends
  them, rather than the older ``--rt/--dur`` flags appended to the prompt.
- ``image_url.url`` takes an http(s) URL or a ``data:image/<fmt>;base64,…`` URL (BytePlus's
  doc; vercel/ai ``packages/bytedance`` sends data URLs too), so images never need a
  public address.
- Statuses are ``queued → running → succeeded | failed | cancelled | expired``; there is
  no progress number. ``expired`` (the task outlived ``execution_expires_after``, waiting
  in the queue, typically on the flex tier [3P]) is ``RENDER_CAPACITY``.
- A ``failed`` task's ``error.code`` is read by :func:`_failure_code_of`: output
  moderation (``OutputVideoSensitiveContentDetected[.…]`` [3P: production code], any
  ``…SensitiveContentDetected``) is ``content_policy``; the parameter codes
  ``invalid_request``; the Common Error Codes page's overload codes (``ServerOverloaded``,
  ``ModelLoadingError``, ``InflightBatchsizeExceeded``, ``InvalidEndpoint.ClosedEndpoint``)
  are ``RENDER_CAPACITY`` and its ``InternalServiceError`` ``RENDER_TRANSIENT`` [C: the
  codes and their meaning; I: that a failed task carries them, which only moderation is
  seen doing], as is ``ServiceUnavailable`` [I: the 503 code]; anything else is
  ``provider_failed``.
- ``DELETE`` cancels a *queued* task (it becomes ``cancelled``), cannot stop a running
  one, and **deletes the record** of a finished one; so cancel looks first and only
  deletes what is still queued.
- Errors are ``{"error": {"code", "message", "param", "type"}}`` with string codes such as
  ``RateLimitExceeded.EndpointRPMExceeded``; ``QuotaExceeded`` (free quota used up) is a
  429 and ``AccountOverdueError`` a 403, so the code, not the status, decides.
- No idempotency key and no lookup by our key; callbacks are unsigned task objects, used
  only as hints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from backend.errors import (
    ProviderCapacity,
    ProviderError,
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
    ImageInput,
    RenderRequest,
    RenderState,
    RenderStatus,
    raw_task_id,
    unsigned_hint,
)
from backend.providers.http import ProviderHTTP, by_status, json_body, retry_after_seconds
from backend.settings import Settings

TASKS_PATH = "/contents/generations/tasks"
#: Seedance 1.0 Pro renders 480p/720p/1080p; genhook's prices assume 720p.
RESOLUTION = "720p"

# Ark error codes, per the Common Error Codes page and the codes production code meets.
_RATE_LIMITED_PREFIXES = ("RateLimitExceeded",)
_RATE_LIMITED = {
    "ModelAccountRpmRateLimitExceeded",
    "ModelAccountTpmRateLimitExceeded",
    "ModelAccountIpmRateLimitExceeded",
    "APIAccountRpmRateLimitExceeded",
    "AccountRateLimitExceeded",
    "RequestBurstTooFast",
}
_CAPACITY = {
    "ServerOverloaded",
    "ModelLoadingError",
    "InflightBatchsizeExceeded",
    "InvalidEndpoint.ClosedEndpoint",
}
#: Out of balance or quota, or the model/service not opened for our account. QuotaExceeded
#: also covers "too many queued tasks" per the page; it is treated as quota all the same.
_QUOTA_PREFIXES = ("OperationDenied",)
_QUOTA = {
    "AccountOverdueError",
    "QuotaExceeded",
    "SetLimitExceeded",
    "ModelNotOpen",
    "AccessDenied",
}
_AUTH = {"AuthenticationError", "InvalidAccountStatus"}
_INVALID_PREFIXES = (
    "MissingParameter",
    "InvalidParameter",
    "InvalidImageURL",
    "InvalidEndpointOrModel",
    "InvalidEndpoint.NotFound",
)
#: Input*, Output* and bare SensitiveContentDetected[.…] are all moderation.
_MODERATION_MARK = "SensitiveContentDetected"
#: A failed task's codes for Ark's own trouble (module docstring); overload is _CAPACITY.
_RENDER_TRANSIENT_CODES = {"InternalServiceError", "ServiceUnavailable"}


def build(settings: Settings, client: httpx.Client) -> BytePlusAdapter | None:
    if not settings.byteplus_api_key:
        return None
    return BytePlusAdapter(
        client=client, base_url=settings.byteplus_base_url, api_key=settings.byteplus_api_key
    )


class BytePlusAdapter(BaseAdapter):
    name = "byteplus"
    supports_callbacks = True
    supports_cancel = True

    def __init__(self, *, client: httpx.Client, base_url: str, api_key: str) -> None:
        self._http = ProviderHTTP(
            client=client,
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            classify=_classify,
        )

    def submit(self, request: RenderRequest) -> str:
        content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
        if request.image:
            content.append(_image_part(request.image, "first_frame"))
        if request.end_image:
            content.append(_image_part(request.end_image, "last_frame"))
        body: dict[str, Any] = {
            "model": request.model,
            "content": content,
            # genhook's 16:9, 9:16 and 1:1 are all Seedance ratios, and its 5 and 10 s lie in
            # Seedance 1.0's 2-12 s range: both pass through unchanged.
            "ratio": request.aspect_ratio,
            "duration": request.duration_seconds,
            "resolution": RESOLUTION,
        }
        if request.callback_url:
            body["callback_url"] = request.callback_url
        answer = self._http.json("POST", TASKS_PATH, json=body, creates=True)
        task_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ProviderTransient("provider_bad_answer", "the create answer has no task id")
        return task_id

    def poll(self, task_id: str) -> RenderStatus:
        return _status_of(self._task(raw_task_id(task_id)))

    def cancel(self, task_id: str) -> bool:
        """Cancel a queued task. A running one cannot be stopped, and DELETE on a finished
        one would erase its record (and output URL), so only queued tasks are deleted."""
        raw_id = raw_task_id(task_id)
        status = self._task(raw_id).get("status")
        if status == "cancelled":
            return True
        if status != "queued":
            return False
        try:
            self._http.request("DELETE", f"{TASKS_PATH}/{raw_id}")
        except ProviderRejected:  # it started running in between: too late
            return False
        return True

    def callback(self, headers: Mapping[str, str], raw_body: bytes) -> CallbackHint:
        """Ark POSTs the task object, unsigned, on status changes: only a hint."""
        return unsigned_hint(raw_body, "id")

    def health(self) -> None:
        self._http.request("GET", TASKS_PATH, params={"page_size": "1"})

    def _task(self, raw_id: str) -> dict[str, Any]:
        task = self._http.json("GET", f"{TASKS_PATH}/{raw_id}")
        if not isinstance(task, dict):
            raise ProviderTransient("provider_bad_answer", "the task is not a JSON object")
        return task


def _image_part(image: ImageInput, role: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": image.url_or_data_url()}, "role": role}


def _status_of(task: Mapping[str, Any]) -> RenderStatus:
    status = task.get("status")
    if status == "queued":
        return RenderStatus(RenderState.QUEUED, JobPhase.QUEUED)
    if status == "running":
        return RenderStatus(RenderState.RUNNING, JobPhase.RENDERING)
    if status == "succeeded":
        video_url = (task.get("content") or {}).get("video_url")
        if not video_url:
            return _failed("provider_failed", "Seedance reported success without a video")
        # Seedance is billed by output tokens; they are what the task cost.
        tokens = (task.get("usage") or {}).get("completion_tokens")
        return RenderStatus(
            RenderState.SUCCEEDED,
            JobPhase.FINISHING,
            output_url=video_url,
            cost=float(tokens) if isinstance(tokens, int | float) else None,
        )
    if status == "failed":
        error = task.get("error") or {}
        code = str(error.get("code") or "")
        message = f"{code or 'failed'}: {error.get('message') or 'Seedance reported a failure'}"
        return _failed(_failure_code_of(code), message)
    if status == "expired":
        return _failed(RENDER_CAPACITY, "expired: the task outlived its execution_expires_after")
    if status == "cancelled":
        return RenderStatus(RenderState.CANCELED, JobPhase.QUEUED)
    raise ProviderTransient("provider_bad_answer", f"unknown Seedance task status {status!r}")


def _failure_code_of(code: str) -> str:
    """genhook's error code for a failed task's ``error.code`` (module docstring)."""
    if _MODERATION_MARK in code:
        return "content_policy"
    if code in _CAPACITY:
        return RENDER_CAPACITY
    if code in _RENDER_TRANSIENT_CODES:
        return RENDER_TRANSIENT
    if code.startswith(_INVALID_PREFIXES):
        return "invalid_request"
    return "provider_failed"


def _failed(code: str, message: str) -> RenderStatus:
    return RenderStatus(
        RenderState.FAILED, JobPhase.RENDERING, error_code=code, error_message=message
    )


def _classify(response: httpx.Response) -> ProviderError:
    error = json_body(response).get("error")
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or "")
    message = str(error.get("message") or response.reason_phrase)
    status = response.status_code
    if not code:
        return by_status(response, "provider_error", message)
    detail = f"{code}: {message}"
    if code in _RATE_LIMITED or code.startswith(_RATE_LIMITED_PREFIXES):
        return ProviderRateLimited(
            "rate_limited", detail, status=status, retry_after_seconds=retry_after_seconds(response)
        )
    if code in _CAPACITY:
        return ProviderCapacity(
            "capacity", detail, status=status, retry_after_seconds=retry_after_seconds(response)
        )
    if code in _AUTH:
        return ProviderQuotaExhausted("auth_failed", detail, status=status)
    if code in _QUOTA or code.startswith(_QUOTA_PREFIXES):
        return ProviderQuotaExhausted("quota_exhausted", detail, status=status)
    if _MODERATION_MARK in code:
        return ProviderRejected("content_policy", detail, status=status)
    if code.startswith(_INVALID_PREFIXES):
        return ProviderRejected("invalid_request", detail, status=status)
    return by_status(response, "provider_error", detail)
