"""MiniMax's video generation API (Hailuo), the v1 surface at ``api.minimax.io``.

Auth is ``Authorization: Bearer <api key>``. Paths: ``POST /v1/video_generation`` creates a
task, ``GET /v1/query/video_generation?task_id=`` reads it, and on ``Success`` its
``file_id`` is turned into a download link by ``GET /v1/files/retrieve?file_id=`` (valid
about 9 hours). Handles are MiniMax's bare ``task_id``.

Quirks handled, and where each was checked:

- Business errors arrive with **HTTP 200** and a non-zero ``base_resp.status_code``, bad
  keys included (MiniMax-AI/cli ``src/client/http.ts`` checks ``base_resp`` on every 200;
  the codes are from platform.minimax.io/docs/api-reference/errorcode and its Chinese twin
  on platform.minimaxi.com; 2013/1042 from the MiniMax table on Baidu Qianfan's docs; 1039
  "TPM rate limit" from MiniMax's File API doc as mirrored on apifox; 2049 and 2061 from
  community code and MiniMax-AI/cli; 1041 "conn limit" and 1024 "internal error" are on the
  errorcode page too, per verbatim copies of it in community notes [3P]).
- A ``Fail`` task is classified by its ``base_resp.status_code`` (:func:`_failed`); that a
  failed task reports its reason there at all is [I] (MiniMax's query doc shows none).
  1026/1027 (sensitive input/output) are ``content_policy`` and 2013/1042 (parameters)
  ``invalid_request``; 1041 "conn limit" is ``RENDER_CAPACITY`` [I: that it means
  capacity mid-render]; 1001 "request timeout", 1013 "internal service error", 1024
  "internal error" and 1033 "system error", all "please retry your requests later", are
  ``RENDER_TRANSIENT`` (codes and advice from the pages above); 1000 "unknown error" and
  anything else ``provider_failed``.
- Statuses ``Preparing | Queueing | Processing | Success | Fail``, in that order
  (platform.minimax.io/docs/api-reference/video-generation-query). No progress number.
- ``duration`` is an integer, 6 or 10: genhook's 5 s renders as 6 s. ``resolution`` is
  ``768P``, the one that allows both durations. There is no aspect-ratio field: text-to-video
  comes out 16:9 and image-to-video follows the first frame, so ``aspect_ratio`` is dropped.
  ``first_frame_image`` / ``last_frame_image`` take a public URL or a base64 ``data:`` URL
  (MiniMax docs as copied by UCloud Modelverse and fast-token [3P]).
- With ``callback_url`` MiniMax first POSTs ``{"challenge": …}`` while creating the task and
  fails the creation unless the same JSON is echoed within 3 s (MiniMax's video generation
  doc, older copy in sub0xdai/quantum-cat ``example.md``); then it POSTs status updates
  shaped like the query answer. They are unsigned: hints, re-queried.
- No cancel on v1 (only the v2 surface has a DELETE, per MiniMax-AI/cli
  ``src/client/endpoints.ts``) and no idempotency key, so no lookup by genhook's job id.
"""

from __future__ import annotations

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
    RenderRequest,
    RenderState,
    RenderStatus,
    callback_json,
    raw_task_id,
    unsigned_hint,
)
from backend.providers.http import ProviderHTTP, by_status, json_body, retry_after_seconds
from backend.settings import Settings

#: genhook's durations in MiniMax's: only 6 and 10 s exist, 5 s becomes the nearest, 6.
DURATIONS = {5: 6, 10: 10}
#: 768P is the resolution where both 6 and 10 s are allowed (1080P is 6 s only).
RESOLUTION = "768P"
#: A documented ``purpose`` of ``GET /v1/files/list``, used by the health probe.
HEALTH_FILE_PURPOSE = "t2a_async_input"

_RATE_LIMITED = {1002, 1039}
_CAPACITY = {1041}
_AUTH = {1004, 2049}
_QUOTA = {1008, 2061}
_SERVER = {1000, 1001, 1013, 1024, 1033}
#: Codes a failed task may end with for MiniMax's own trouble; "unknown error" is not one.
_RENDER_TRANSIENT = _SERVER - {1000}
_CONTENT_POLICY = {1026, 1027}
_INVALID = {1042, 2013}

#: The slug ``by_status`` errors get, for answers without a ``base_resp``.
_STATUS_SLUGS = {
    429: "rate_limited",
    401: "auth_failed",
    403: "auth_failed",
    402: "quota_exhausted",
    503: "capacity",
}

#: A failed task's ``base_resp`` codes and what each means for routing, in order.
_RENDER_FAILURES = (
    (_CONTENT_POLICY, "content_policy"),
    (_INVALID, "invalid_request"),
    (_CAPACITY, RENDER_CAPACITY),
    (_RENDER_TRANSIENT, RENDER_TRANSIENT),
)

_PENDING = {
    "Preparing": (RenderState.QUEUED, JobPhase.PREPARING),
    "Queueing": (RenderState.QUEUED, JobPhase.QUEUED),
    "Processing": (RenderState.RUNNING, JobPhase.RENDERING),
}


def build(settings: Settings, client: httpx.Client) -> MiniMaxAdapter | None:
    if not settings.minimax_api_key:
        return None
    return MiniMaxAdapter(
        client=client, base_url=settings.minimax_base_url, api_key=settings.minimax_api_key
    )


class MiniMaxAdapter(BaseAdapter):
    name = "minimax"
    supports_callbacks = True

    def __init__(self, *, client: httpx.Client, base_url: str, api_key: str) -> None:
        self._http = ProviderHTTP(
            client=client,
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            classify=_classify,
        )

    def submit(self, request: RenderRequest) -> str:
        body: dict[str, Any] = {
            "model": request.model,
            "prompt": request.prompt,
            "prompt_optimizer": True,  # MiniMax's default, sent so it is visible
            "duration": DURATIONS.get(request.duration_seconds, 6),
            "resolution": RESOLUTION,
        }
        if request.image:
            body["first_frame_image"] = request.image.url_or_data_url()
        if request.end_image:
            body["last_frame_image"] = request.end_image.url_or_data_url()
        if request.callback_url:
            body["callback_url"] = request.callback_url
        answer = self._call("POST", "/v1/video_generation", json=body, creates=True)
        task_id = answer.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise ProviderOutcomeUnknown("provider_bad_answer", "MiniMax answered without task_id")
        return task_id

    def poll(self, task_id: str) -> RenderStatus:
        params = {"task_id": raw_task_id(task_id)}
        task = self._call("GET", "/v1/query/video_generation", params=params)
        status = task.get("status")
        if status in _PENDING:
            state, phase = _PENDING[status]
            return RenderStatus(state, phase)
        if status == "Success":
            return RenderStatus(
                RenderState.SUCCEEDED, JobPhase.FINISHING, output_url=self._download_url(task)
            )
        if status == "Fail":
            return _failed(task.get("base_resp") or {})
        raise ProviderTransient("provider_bad_answer", f"unknown MiniMax status {status!r}")

    def callback(self, headers: Mapping[str, str], raw_body: bytes) -> CallbackHint:
        """The URL check (``challenge``, echoed back) or an unsigned status update."""
        challenge = callback_json(raw_body).get("challenge")
        if isinstance(challenge, str) and challenge:
            return CallbackHint(task_id=None, reply={"challenge": challenge})
        return unsigned_hint(raw_body, "task_id", numeric_ids=True)

    def health(self) -> None:
        """Listing files is read-only, cheap and authenticated, and costs no credits."""
        self._call("GET", "/v1/files/list", params={"purpose": HEALTH_FILE_PURPOSE})

    def _download_url(self, task: Mapping[str, Any]) -> str:
        file_id = task.get("file_id")
        if not file_id:
            raise ProviderTransient("provider_bad_answer", "Success without a file_id")
        answer = self._call("GET", "/v1/files/retrieve", params={"file_id": str(file_id)})
        url = (answer.get("file") or {}).get("download_url")
        if not isinstance(url, str) or not url:
            raise ProviderTransient("provider_bad_answer", "the file has no download_url")
        return url

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One call; a 200 whose ``base_resp`` carries an error is raised like an HTTP one,
        except for a failed task, whose query reports the failure's reason there [I]."""
        response = self._http.request(method, path, **kwargs)
        body = json_body(response)
        if not body:
            lost = ProviderOutcomeUnknown if kwargs.get("creates") else ProviderTransient
            raise lost("provider_bad_answer", "the answer was not a JSON object")
        error = None if body.get("status") == "Fail" else _base_resp_error(body, response)
        if error is not None:
            raise error
        return body


def _failed(base_resp: Mapping[str, Any]) -> RenderStatus:
    """A ``Fail`` task, classified by its ``base_resp`` code (module docstring)."""
    code = base_resp.get("status_code")
    message = str(base_resp.get("status_msg") or "MiniMax reported a failure")
    slug = "provider_failed"
    for codes, meaning in _RENDER_FAILURES:
        if code in codes:
            slug = meaning
            break
    detail = f"MiniMax {code}: {message}" if code else message
    return RenderStatus(
        RenderState.FAILED, JobPhase.RENDERING, error_code=slug, error_message=detail
    )


def _base_resp_error(body: Mapping[str, Any], response: httpx.Response) -> ProviderError | None:
    """MiniMax's own error in ``base_resp``; None when it says success or is missing."""
    base_resp = body.get("base_resp")
    if not isinstance(base_resp, dict):
        return None
    code = base_resp.get("status_code")
    if not isinstance(code, int) or code == 0:
        return None
    message = str(base_resp.get("status_msg") or response.reason_phrase)
    return _by_code(code, message, response.status_code, retry_after_seconds(response))


def _classify(response: httpx.Response) -> ProviderError:
    """A non-2xx answer: MiniMax's ``base_resp`` if it has one, else the HTTP status."""
    error = _base_resp_error(json_body(response), response)
    if error is not None:
        return error
    slug = _STATUS_SLUGS.get(response.status_code, "provider_error")
    return by_status(response, slug, f"MiniMax HTTP {response.status_code}")


def _by_code(
    code: Any, message: str, status: int | None, retry_after: float | None
) -> ProviderError:
    detail = f"MiniMax {code}: {message}"
    if code in _RATE_LIMITED:
        return ProviderRateLimited(
            "rate_limited", detail, status=status, retry_after_seconds=retry_after
        )
    if code in _CAPACITY:
        return ProviderCapacity("capacity", detail, status=status, retry_after_seconds=retry_after)
    if code in _AUTH:
        return ProviderQuotaExhausted("auth_failed", detail, status=status)
    if code in _QUOTA:
        return ProviderQuotaExhausted("quota_exhausted", detail, status=status)
    if code in _SERVER:
        return ProviderTransient(
            "provider_error", detail, status=status, retry_after_seconds=retry_after
        )
    if code in _CONTENT_POLICY:
        return ProviderRejected("content_policy", detail, status=status)
    if code in _INVALID:
        return ProviderRejected("invalid_request", detail, status=status)
    if status is not None and status >= 500:
        return ProviderTransient("provider_error", detail, status=status)
    return ProviderRejected("provider_error", detail, status=status)
