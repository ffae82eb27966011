"""fal.ai's queue API (``queue.fal.run``), which hosts Kling O3 among many models.

Auth: ``Authorization: Key <key_id>:<key_secret>``. Paths per the official SDK (fal-ai/fal
``fal_client/client.py`` at c6f0afa): submit ``POST {queue}/{owner}/{app}/{endpoint}``
with the model's own input and ``?fal_webhook=<url>``; status ``GET …/{owner}/{app}/
requests/{id}/status``, result ``GET …/requests/{id}``, cancel ``PUT …/requests/{id}/
cancel``. Those drop the endpoint path (``SyncRequestHandle.from_request_id``), so handles
read ``fal-ai/kling-video|<id>`` and need no URL from submit to survive a restart.

Quirks handled:

- A failed request is still ``COMPLETED`` (with ``error``/``error_type``); its result call
  answers the model's error, a 422 ``detail[]`` typed e.g. ``content_policy_violation``.
  Input is validated in the queue, so bad input fails the request rather than the submit
  (docs.fal.ai webhooks: a missing field arrives as ``ERROR`` with the 422 ``detail``). A
  request cancelled while running ends with a 499 result (fal-ai/fal
  ``tests/e2e/test_apps.py::test_app_cancellation``).
- Infrastructure errors are ``detail`` + ``error_type`` (+ ``X-Fal-Error-Type``): 503
  ``runner_*``, 504 ``request_timeout`` (docs "Request Error Types"). An exhausted balance
  is 403 ``User is locked. Reason: Exhausted balance…`` (fal-ai/fal issues #1112, #1147); a
  refused key is 401 ``No user found for Key ID and Secret`` (fal-ai/fal #1068).
- A failed request is classified by :func:`_failure_code_of`: its result's model error
  typed ``content_policy_violation`` is ``content_policy``, any other 4xx model error
  ``invalid_request`` [C: docs "Model Errors"]; the ``error_type`` the status reports
  (the SDK reads ``error``/``error_type`` off a ``COMPLETED`` status [C: client.py];
  that they carry the request error types is [I]) decides fal's own trouble [C: the
  types and their meanings, docs "Request Error Types"; I: the split]:
  ``runner_scheduling_failure`` (no runner could be allocated) and ``startup_timeout``
  are ``RENDER_CAPACITY``; ``request_timeout``, ``runner_connection_timeout``,
  ``runner_disconnected``, ``runner_connection_refused``, ``runner_connection_error``,
  ``runner_incomplete_response``, ``runner_server_error`` and ``internal_error`` are
  ``RENDER_TRANSIENT``, as is a model error answered with ``X-Fal-Retryable: true``
  ("retrying the exact same request might succeed" [C: docs "Model Errors"]). By the
  time a queued request shows one of these, fal's queue has already retried it up to
  10 times (docs "Retries"). Any other failure is ``provider_failed``.
- Webhooks come once, at the end, ED25519-signed (:class:`_WebhookKeys`).
- There is no idempotency key (none in fal_client): a lost submit cannot be looked up.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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
    HANDLE_SEPARATOR,
    RENDER_CAPACITY,
    RENDER_TRANSIENT,
    BaseAdapter,
    CallbackHint,
    CallbackRejected,
    RenderRequest,
    RenderState,
    RenderStatus,
    raw_task_id,
)
from backend.providers.http import ProviderHTTP, by_status, json_body, retry_after_seconds
from backend.settings import Settings

#: The catalog names the text endpoint; with a first frame, the model's sibling endpoint
#: is used instead (fal-ai/kling-video/o3/pro/text-to-video → …/image-to-video).
TEXT_TO_VIDEO, IMAGE_TO_VIDEO = "text-to-video", "image-to-video"
#: The result's status when the app stopped on a cancel (``RequestCancelledException``).
CANCELLED_HTTP_STATUS = 499
#: fal's docs: refuse webhooks timestamped further than this from now; cache the JWKS at
#: most a day. A failed verification refetches it at most once a minute, so forged
#: callbacks cannot turn into a flood of JWKS requests.
WEBHOOK_TOLERANCE_SECONDS = 300
JWKS_CACHE_SECONDS = 24 * 3600
JWKS_REFETCH_GAP_SECONDS = 60
#: A failed request's ``error_type`` that is fal's own trouble (module docstring).
_CAPACITY_ERROR_TYPES = frozenset({"runner_scheduling_failure", "startup_timeout"})
_TRANSIENT_ERROR_TYPES = frozenset(
    {
        "request_timeout",
        "runner_connection_timeout",
        "runner_disconnected",
        "runner_connection_refused",
        "runner_connection_error",
        "runner_incomplete_response",
        "runner_server_error",
        "internal_error",
    }
)
#: The code :func:`_classify` gives a 5xx model error fal marks ``X-Fal-Retryable: true``.
RETRYABLE_MODEL_ERROR = "provider_retryable"
#: Health probe: the status of a request that cannot exist, under the catalog's app.
HEALTH_APP = "fal-ai/kling-video"
HEALTH_REQUEST_ID = "00000000-0000-0000-0000-000000000000"


def build(settings: Settings, client: httpx.Client) -> FalAdapter | None:
    if not settings.fal_key:
        return None
    return FalAdapter(
        client=client,
        queue_url=settings.fal_queue_url,
        key=settings.fal_key,
        jwks_url=settings.fal_jwks_url,
    )


class FalAdapter(BaseAdapter):
    name = "fal"
    supports_callbacks = True
    supports_cancel = True

    def __init__(self, *, client: httpx.Client, queue_url: str, key: str, jwks_url: str) -> None:
        self._http = ProviderHTTP(
            client=client,
            base_url=queue_url,
            headers={"Authorization": f"Key {key}"},
            classify=_classify,
        )
        self._keys = _WebhookKeys(client, jwks_url)

    def submit(self, request: RenderRequest) -> str:
        endpoint = _endpoint(request)
        params = {"fal_webhook": request.callback_url} if request.callback_url else None
        data = self._http.json(
            "POST", f"/{endpoint}", json=_arguments(request), params=params, creates=True
        )
        request_id = data.get("request_id") if isinstance(data, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise ProviderOutcomeUnknown("provider_bad_answer", "fal's answer has no request_id")
        return f"{_app_of(endpoint)}{HANDLE_SEPARATOR}{request_id}"

    def poll(self, task_id: str) -> RenderStatus:
        path = _request_path(task_id)
        status = self._http.json("GET", f"{path}/status")
        state = status.get("status") if isinstance(status, dict) else None
        if state == "IN_QUEUE":
            position = status.get("queue_position")
            position = position if isinstance(position, int) else None
            return RenderStatus(RenderState.QUEUED, JobPhase.QUEUED, queue_position=position)
        if state == "IN_PROGRESS":
            return RenderStatus(RenderState.RUNNING, JobPhase.RENDERING)
        if state == "COMPLETED":
            return self._completed(path, status)
        raise ProviderTransient("provider_bad_answer", f"unknown fal status {state!r}")

    def cancel(self, task_id: str) -> bool:
        """202 ``CANCELLATION_REQUESTED`` asks the runner to stop (it may finish anyway);
        400 ``ALREADY_COMPLETED`` and 404 ``NOT_FOUND`` leave nothing to stop."""
        try:
            self._http.request("PUT", f"{_request_path(task_id)}/cancel")
        except ProviderRejected as exc:
            if exc.status in (400, 404):
                return False
            raise
        return True

    def callback(self, headers: Mapping[str, str], raw_body: bytes) -> CallbackHint:
        """fal's webhook, verified: ED25519 over ``request_id \\n user_id \\n timestamp \\n
        hex(sha256(body))`` with a key from fal's JWKS (docs.fal.ai webhooks, "Verifying
        your webhook"); the body's ``request_id`` is signed through its hash."""
        lowered = {key.lower(): value for key, value in headers.items()}
        fields = ("request-id", "user-id", "timestamp", "signature")
        values = [lowered.get(f"x-fal-webhook-{field}", "") for field in fields]
        if not all(values):
            raise CallbackRejected("missing X-Fal-Webhook-* signature headers")
        request_id, user_id, timestamp, signature = values
        _check_timestamp(timestamp)
        digest = hashlib.sha256(raw_body).hexdigest()
        message = f"{request_id}\n{user_id}\n{timestamp}\n{digest}".encode()
        try:
            signature_bytes = bytes.fromhex(signature)
        except ValueError:
            raise CallbackRejected("the signature is not hex") from None
        if not self._keys.verify(signature_bytes, message):
            raise CallbackRejected("the signature matches none of fal's keys")
        try:
            body = json.loads(raw_body)
        except ValueError:
            raise CallbackRejected("the body is not JSON") from None
        task_id = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(task_id, str) or not task_id:
            task_id = request_id
        return CallbackHint(task_id=task_id, verified=True)

    def health(self) -> None:
        """The status of a request that cannot exist: free, authenticated, on the queue
        host renders use. 404 means the key was accepted; 401/403 raise. An account locked
        for its balance still passes (status calls keep working then: fal-ai/fal #1147)."""
        try:
            self._http.request("GET", f"/{HEALTH_APP}/requests/{HEALTH_REQUEST_ID}/status")
        except ProviderRejected as exc:
            if exc.status != 404:
                raise

    def _completed(self, path: str, status: Mapping[str, Any]) -> RenderStatus:
        """A finished request: its result says whether it made a video."""
        try:
            result = self._http.json("GET", path)
        except ProviderError as exc:
            if exc.status == CANCELLED_HTTP_STATUS:
                return RenderStatus(RenderState.CANCELED, JobPhase.RENDERING)
            if _is_the_requests_own_failure(exc, failed=bool(status.get("error"))):
                return _failed(_failure_code_of(exc, status.get("error_type")), exc.message)
            raise
        video = result.get("video") if isinstance(result, dict) else None
        url = video.get("url") if isinstance(video, dict) else None
        if not isinstance(url, str) or not url:
            return _failed("provider_failed", "fal reported success without a video")
        return RenderStatus(RenderState.SUCCEEDED, JobPhase.FINISHING, output_url=url)


def _is_the_requests_own_failure(exc: ProviderError, *, failed: bool) -> bool:
    """A model error answered by the result call, or any HTTP error there once the status
    already said the request failed; throttling and our account's trouble are not."""
    if isinstance(exc, ProviderRejected):
        return True
    is_http_error = isinstance(exc, ProviderTransient) and exc.status is not None
    return failed and is_http_error and not isinstance(exc, ProviderRateLimited)


def _failure_code_of(exc: ProviderError, error_type: Any) -> str:
    """genhook's error code for a failed request (module docstring says which are sure)."""
    if exc.code in ("content_policy", "invalid_request"):
        return exc.code
    kind = error_type if isinstance(error_type, str) else ""
    if kind in _CAPACITY_ERROR_TYPES:
        return RENDER_CAPACITY
    if kind in _TRANSIENT_ERROR_TYPES or exc.code == RETRYABLE_MODEL_ERROR:
        return RENDER_TRANSIENT
    return "provider_failed"


def _endpoint(request: RenderRequest) -> str:
    if request.end_image and not request.image:
        raise ProviderRejected("invalid_request", "a last frame needs a first frame on fal")
    if request.image and request.model.endswith(TEXT_TO_VIDEO):
        return request.model.removesuffix(TEXT_TO_VIDEO) + IMAGE_TO_VIDEO
    return request.model


def _arguments(request: RenderRequest) -> dict[str, Any]:
    """Kling O3's input on fal. ``duration`` is a *string* enum "3"…"15" (the live schema as
    community integrations re-read it; an integer is a 422 [3P]), so genhook's 5 and 10 go
    as "5"/"10". Text-to-video takes ``aspect_ratio`` 16:9, 9:16 or 1:1 as genhook does;
    image-to-video takes none (the frame decides). Frames are ``image_url`` and
    ``end_image_url`` [3P]: a URL, or else a data URI, which fal accepts where a file URL
    goes (docs.fal.ai "fal CDN"; fal_client ``encode()`` builds them)."""
    arguments: dict[str, Any] = {
        "prompt": request.prompt,
        "duration": str(request.duration_seconds),
    }
    if request.image is None:
        arguments["aspect_ratio"] = request.aspect_ratio
    else:
        arguments["image_url"] = request.image.url_or_data_url()
    if request.end_image is not None:
        arguments["end_image_url"] = request.end_image.url_or_data_url()
    return arguments


def _app_of(endpoint: str) -> str:
    """``owner/app`` of an endpoint id (fal_client ``AppId``; namespaced apps not used)."""
    return "/".join(endpoint.split("/")[:2])


def _request_path(handle: str) -> str:
    return f"/{handle.rpartition(HANDLE_SEPARATOR)[0]}/requests/{raw_task_id(handle)}"


def _failed(code: str, message: str) -> RenderStatus:
    return RenderStatus(
        RenderState.FAILED, JobPhase.RENDERING, error_code=code, error_message=message
    )


def _check_timestamp(timestamp: str) -> None:
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise CallbackRejected("the timestamp is not a number") from None
    if abs(time.time() - sent_at) > WEBHOOK_TOLERANCE_SECONDS:
        raise CallbackRejected("the timestamp is too old or in the future")


def _classify(response: httpx.Response) -> ProviderError:
    status = response.status_code
    body = json_body(response)
    detail = body.get("detail")
    items = [item for item in detail if isinstance(item, dict)] if isinstance(detail, list) else []
    types = [str(item.get("type")) for item in items]
    if items:
        text = "; ".join(str(item.get("msg") or item.get("type")) for item in items)
    else:
        text = str(detail or response.reason_phrase or status)
    error_type = body.get("error_type") or response.headers.get("x-fal-error-type") or ""
    message = f"fal {error_type or (types[0] if types else status)}: {text}"
    retry_after = retry_after_seconds(response)
    if "content_policy_violation" in types:
        return ProviderRejected("content_policy", message, status=status)
    if status == 429:
        return ProviderRateLimited(
            "rate_limited", message, status=status, retry_after_seconds=retry_after
        )
    if status == 401:
        return ProviderQuotaExhausted("auth_failed", message, status=status)
    if status in (402, 403):
        locked = "balance" in text.lower() or "locked" in text.lower()
        return ProviderQuotaExhausted(
            "quota_exhausted" if locked else "auth_failed", message, status=status
        )
    if status == 503 or error_type.startswith("runner_"):
        return ProviderCapacity("capacity", message, status=status, retry_after_seconds=retry_after)
    if status >= 500:
        retryable = response.headers.get("x-fal-retryable", "").lower() == "true"
        slug = RETRYABLE_MODEL_ERROR if retryable else "provider_error"
        return ProviderTransient(slug, message, status=status, retry_after_seconds=retry_after)
    if status in (400, 422) or items:
        return ProviderRejected("invalid_request", message, status=status)
    if status == 404:
        return ProviderRejected("not_found", message, status=status)
    return by_status(response, "provider_error", message)


class _WebhookKeys:
    """fal's webhook public keys, from its JWKS (OKP/Ed25519, ``x`` base64url).

    Fetched with the adapter's client on first use, kept a day, and fetched again when no
    key verifies a signature (a rotation), at most once a minute. Any key may match.
    """

    def __init__(self, client: httpx.Client, url: str) -> None:
        self._client = client
        self._url = url
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def verify(self, signature: bytes, message: bytes) -> bool:
        with self._lock:
            if self._age() > JWKS_CACHE_SECONDS:
                self._fetch()
            if _verifies(self._keys, signature, message):
                return True
            if self._age() < JWKS_REFETCH_GAP_SECONDS:
                return False
            self._fetch()
            return _verifies(self._keys, signature, message)

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else time.monotonic() - self._fetched_at

    def _fetch(self) -> None:  # under the lock
        self._fetched_at = time.monotonic()
        try:
            response = self._client.get(self._url)
            response.raise_for_status()
            keys = response.json().get("keys") or []
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise CallbackRejected(f"fal's webhook keys could not be fetched: {exc}") from None
        self._keys = [key for key in map(_public_key, keys) if key is not None]


def _public_key(jwk: Any) -> Ed25519PublicKey | None:
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return None
    x = str(jwk.get("x") or "")
    try:
        return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
    except ValueError:
        return None


def _verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False
