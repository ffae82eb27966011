"""Kling AI's official API (``api-singapore.klingai.com``).

Auth is a short-lived HS256 JWT minted from the AccessKey/SecretKey pair (``iss`` = access
key, ``exp`` = now + 30 min, ``nbf`` = now - 5 s), sent as a bearer token. Text-to-video
and image-to-video are separate endpoints, and a task is queried under the endpoint that
created it, so handles read ``text2video|<task_id>`` or ``image2video|<task_id>``.

Quirks handled (sources: the copy of Kling's API reference in
``shared/reference/provider-apis.md`` §1, marked [C] there unless noted):

- Answers are an envelope ``{code, message, request_id, data}``; ``code`` 0 is success and
  business codes arrive with HTTP 200, 400, 401, 403, 404, 429 and 5xx alike. The balance
  running out is a **429** (1102), as is the concurrency cap (1303).
- The success status is spelled ``succeed``; ``duration`` is a *string*; base64 images are
  raw, without a ``data:`` prefix; image-to-video takes no ``aspect_ratio``.
- ``external_task_id`` (unique per account) carries genhook's job id, and a task can be
  queried by it, so a submit whose answer was lost is found again instead of paid twice.
  What Kling answers to a duplicate ``external_task_id`` is undocumented [I]; any refusal
  is resolved the same way, by looking the task up.
- There is no cancel endpoint, and callbacks are unsigned: they are hints, re-queried.

A ``failed`` task carries only free text, ``task_status_msg`` ("failure reason, e.g.
content risk control" [C]); Kling documents no failure codes for tasks, so
:func:`_failure_code_of` reads words, most specific first:

- "risk" / "policy": ``content_policy`` (moderation surfacing late as a failed task [C];
  its exact wording, e.g. "Failure to pass the risk control system", is [I]).
- "invalid": ``invalid_request`` ("Image pixel is invalid" [3P: QuantumNous/new-api#2532]).
- "busy", "overload", "capacity", "backlog": ``RENDER_CAPACITY`` [I: no such message is
  documented; the words of Kling's own 5001/5002 errors, "temporarily unavailable",
  "internal timeout (backlog)", are the model].
- "internal error", "server error", "system error", "timeout", "timed out", "try again":
  ``RENDER_TRANSIENT`` [I: the words of its 5000 "server internal error"].
- Anything else: ``provider_failed``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx
import jwt

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
    HANDLE_SEPARATOR,
    RENDER_CAPACITY,
    RENDER_TRANSIENT,
    BaseAdapter,
    CallbackHint,
    RenderRequest,
    RenderState,
    RenderStatus,
    unsigned_hint,
)
from backend.providers.http import ProviderHTTP, by_status, json_body, retry_after_seconds
from backend.settings import Settings

#: Token lifetime used by Kling's own example; re-minted a minute before it runs out.
TOKEN_LIFETIME_SECONDS = 1800
TOKEN_REFRESH_MARGIN_SECONDS = 60
#: Kling's doc back-dates ``nbf`` by 5 s for clock skew.
NOT_BEFORE_SKEW_SECONDS = 5

TEXT2VIDEO = "text2video"
IMAGE2VIDEO = "image2video"

_RATE_LIMITED = {1302}
_CAPACITY = {1303, 5001}
#: Our account: suspended, in arrears, out of resource packs, no permission, IP not allowed,
#: or the key pair refused.
_ACCOUNT = {1000, 1001, 1002, 1003, 1004, 1100, 1101, 1102, 1103, 1304}
_CONTENT_POLICY = {1300, 1301}
_INVALID = {1200, 1201, 1202, 1203}
_SERVER = {5000, 5002}

#: Words of a failed task's ``task_status_msg``, checked in this order (module docstring).
_FAILURE_WORDS = (
    (("risk", "policy"), "content_policy"),
    (("invalid",), "invalid_request"),
    (("busy", "overload", "capacity", "backlog"), RENDER_CAPACITY),
    (
        ("internal error", "server error", "system error", "timeout", "timed out", "try again"),
        RENDER_TRANSIENT,
    ),
)


def build(settings: Settings, client: httpx.Client) -> KlingAdapter | None:
    if not (settings.kling_access_key and settings.kling_secret_key):
        return None
    return KlingAdapter(
        client=client,
        base_url=settings.kling_base_url,
        access_key=settings.kling_access_key,
        secret_key=settings.kling_secret_key,
    )


class KlingAdapter(BaseAdapter):
    name = "kling"
    supports_find_task = True
    supports_callbacks = True

    def __init__(
        self, *, client: httpx.Client, base_url: str, access_key: str, secret_key: str
    ) -> None:
        self._tokens = _TokenMinter(access_key, secret_key)
        self._http = ProviderHTTP(
            client=client, base_url=base_url, headers=self._auth, classify=_classify
        )

    def submit(self, request: RenderRequest) -> str:
        kind = IMAGE2VIDEO if request.image or request.end_image else TEXT2VIDEO
        body: dict[str, Any] = {
            "model_name": request.model,
            "prompt": request.prompt,
            "duration": str(request.duration_seconds),
            "mode": "std",
            "external_task_id": request.job_id,
        }
        if kind == TEXT2VIDEO:
            body["aspect_ratio"] = request.aspect_ratio
        if request.image:
            body["image"] = request.image.url or request.image.base64()
        if request.end_image:
            body["image_tail"] = request.end_image.url or request.end_image.base64()
        if request.callback_url:
            body["callback_url"] = request.callback_url
        data = _data(self._http.json("POST", f"/v1/videos/{kind}", json=body, creates=True))
        return f"{kind}{HANDLE_SEPARATOR}{data['task_id']}"

    def find_task(self, job_id: str) -> str | None:
        """Kling queries accept the ``external_task_id`` in place of the task id."""
        for kind in (TEXT2VIDEO, IMAGE2VIDEO):
            try:
                data = _data(self._http.json("GET", f"/v1/videos/{kind}/{job_id}"))
            except ProviderRejected:  # 400/404: no such task under this endpoint
                continue
            return f"{kind}{HANDLE_SEPARATOR}{data['task_id']}"
        return None

    def poll(self, task_id: str) -> RenderStatus:
        kind, _, raw_id = task_id.rpartition(HANDLE_SEPARATOR)
        data = _data(self._http.json("GET", f"/v1/videos/{kind or TEXT2VIDEO}/{raw_id}"))
        return _status_of(data)

    def callback(self, headers: Mapping[str, str], raw_body: bytes) -> CallbackHint:
        """Kling's callbacks are the task object, flat and unsigned: only a hint."""
        return unsigned_hint(raw_body, "task_id")

    def health(self) -> None:
        self._http.request(
            "GET", f"/v1/videos/{TEXT2VIDEO}", params={"pageNum": "1", "pageSize": "1"}
        )

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens.token()}"}


class _TokenMinter:
    """Mints the JWT once per lifetime instead of on every call."""

    def __init__(self, access_key: str, secret_key: str) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._token = ""
        self._expires_at = 0.0

    def token(self) -> str:
        now = time.time()
        if now > self._expires_at - TOKEN_REFRESH_MARGIN_SECONDS:
            self._expires_at = now + TOKEN_LIFETIME_SECONDS
            payload = {
                "iss": self._access_key,
                "exp": int(self._expires_at),
                "nbf": int(now) - NOT_BEFORE_SKEW_SECONDS,
            }
            self._token = jwt.encode(
                payload, self._secret_key, algorithm="HS256", headers={"typ": "JWT"}
            )
        return self._token


def _status_of(data: Mapping[str, Any]) -> RenderStatus:
    status = data.get("task_status")
    if status == "submitted":
        return RenderStatus(RenderState.QUEUED, JobPhase.QUEUED)
    if status == "processing":
        return RenderStatus(RenderState.RUNNING, JobPhase.RENDERING)
    if status == "succeed":
        videos = (data.get("task_result") or {}).get("videos") or []
        if not videos or not videos[0].get("url"):
            return _failed("provider_failed", "Kling reported success without a video")
        return RenderStatus(
            RenderState.SUCCEEDED,
            JobPhase.FINISHING,
            output_url=videos[0]["url"],
            cost=_number(data.get("final_unit_deduction")),
        )
    if status == "failed":
        message = str(data.get("task_status_msg") or "Kling reported a failure")
        return _failed(_failure_code_of(message), message)
    raise ProviderTransient("provider_bad_answer", f"unknown Kling task_status {status!r}")


def _failure_code_of(message: str) -> str:
    """genhook's error code for a failed task's message (module docstring: all by words)."""
    lowered = message.lower()
    for words, code in _FAILURE_WORDS:
        if any(word in lowered for word in words):
            return code
    return "provider_failed"


def _number(value: Any) -> float | None:
    """Kling sends ``final_unit_deduction`` as a string of units."""
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _failed(code: str, message: str) -> RenderStatus:
    return RenderStatus(
        RenderState.FAILED, JobPhase.RENDERING, error_code=code, error_message=message
    )


def _data(envelope: Any) -> dict[str, Any]:
    """The ``data`` of a successful envelope; a non-zero ``code`` in a 200 is an error."""
    if not isinstance(envelope, dict):
        raise ProviderTransient("provider_bad_answer", "the answer is not a JSON object")
    code = envelope.get("code")
    if code != 0:
        raise _by_code(code, str(envelope.get("message") or ""), None, None)
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise ProviderTransient("provider_bad_answer", "the answer has no data")
    return data


def _classify(response: httpx.Response) -> ProviderError:
    body = json_body(response)
    code, message = body.get("code"), str(body.get("message") or response.reason_phrase)
    if not isinstance(code, int):
        return by_status(response, "provider_error", message)
    return _by_code(code, message, response.status_code, retry_after_seconds(response))


def _by_code(
    code: Any, message: str, status: int | None, retry_after: float | None
) -> ProviderError:
    detail = f"Kling {code}: {message}"
    if code in _RATE_LIMITED:
        return ProviderRateLimited(
            "rate_limited", detail, status=status, retry_after_seconds=retry_after
        )
    if code in _CAPACITY:
        return ProviderCapacity("capacity", detail, status=status, retry_after_seconds=retry_after)
    if code in _ACCOUNT:
        slug = "auth_failed" if code < 1100 else "quota_exhausted"
        return ProviderQuotaExhausted(slug, detail, status=status)
    if code in _CONTENT_POLICY:
        return ProviderRejected("content_policy", detail, status=status)
    if code in _INVALID:
        return ProviderRejected("invalid_request", detail, status=status)
    if code in _SERVER:
        return ProviderTransient("provider_error", detail, status=status)
    if status is not None and status >= 500:
        return ProviderTransient("provider_error", detail, status=status)
    return ProviderRejected("provider_error", detail, status=status)
