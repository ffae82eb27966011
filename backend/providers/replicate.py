"""Replicate's predictions API (``api.replicate.com``), for the video models it hosts.

Auth is ``Authorization: Bearer <token>``. Official models (no ``:`` in the name, which is
what genhook's catalog sends) are created with ``POST /v1/models/{owner}/{name}/predictions``;
a pinned ``owner/name:version`` goes to ``POST /v1/predictions`` with ``version``. A task
is read with ``GET /v1/predictions/{id}`` and stopped with ``POST
/v1/predictions/{id}/cancel``; the handle is the bare prediction id. ``GET /v1/account`` is
the health probe. Sources: replicate/replicate-python 0110c2c (prediction.py, model.py,
account.py, webhook.py, exceptions.py) and ``shared/reference/provider-apis.md`` §3.

Quirks handled:

- ``input`` is each model's own schema (see :func:`_input_for`); Wan 2.5 text-to-video and
  image-to-video are two models, so a request with an image is sent to ``wan-2.5-i2v``.
- Files go as their URL when genhook has a public one, else as a ``data:`` URL (Replicate
  accepts those; it recommends them only up to 256 kB, so set ``GENHOOK_PUBLIC_BASE_URL``).
- There is no progress field: like the SDK (``Prediction.Progress``), progress is read from
  the last tqdm line (``NN%|…| cur/total``) in ``logs``.
- Errors are RFC 7807 problems (``detail``, ``title``, ``status``); a 429 may carry only
  ``"Request was throttled. Your rate limit resets in ~30s."``, read when there is no
  ``Retry-After``. Content filtering shows as a failed prediction whose ``error`` says
  "flagged as sensitive" / "NSFW" (``E005`` for Seedance), per community callers
  (pollinations/pollinations#10801, HeyPuter/puter#3719).
- A ``failed`` prediction has only its ``error`` string; :func:`_failure_code_of` reads
  it. Content filtering as above. Replicate's own ``E####`` codes [C: docs
  reference/error-codes]: ``E6716`` "Timeout Starting Prediction" (high system load,
  resource allocation delays) is ``RENDER_CAPACITY``; ``E1000`` "Unknown Error" and
  ``E1001`` (out of memory, usually too large an input) stay ``provider_failed``.
  "Prediction interrupted; please retry (code: PA)" (the worker was preempted) is
  ``RENDER_CAPACITY`` and "Director: unexpected error handling prediction (E8765/E9828)"
  (Replicate's orchestrator) ``RENDER_TRANSIENT`` [3P: several integrations retry exactly
  these as Replicate's infrastructure trouble; I: capacity vs. transient]. A model's own
  exception text is ``provider_failed``. A prediction ``aborted`` (its deadline passed
  before it started [C: docs predictions/lifecycle]) waited out its queue:
  ``RENDER_CAPACITY``.
- Webhooks (``webhook`` + ``webhook_events_filter: ["start", "completed"]``) are signed
  per Standard Webhooks; the secret is the setting or, when empty, ``GET
  /v1/webhooks/default/secret`` fetched once. There is no idempotency key, so
  ``find_task`` cannot help, and outputs are deleted after 1 hour (``data_removed``).
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

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
    RenderRequest,
    RenderState,
    RenderStatus,
    phase_from_progress,
    raw_task_id,
)
from backend.providers.http import ProviderHTTP, by_status, json_body, retry_after_seconds
from backend.settings import Settings

WAN_T2V = "wan-video/wan-2.5-t2v"
WAN_I2V = "wan-video/wan-2.5-i2v"
#: Wan 2.5 text-to-video takes a pixel ``size`` (``width*height``), not a ratio: its 720p
#: sizes in Alibaba's list, in the form callers of the Replicate model send [3P]; the 1:1
#: ``960*960`` is not confirmed on Replicate [I].
WAN_SIZES = {"16:9": "1280*720", "9:16": "720*1280", "1:1": "960*960"}
WEBHOOK_EVENTS = ["start", "completed"]
#: The SDK's tqdm pattern (prediction.py ``Prediction.Progress``): percent, bar, cur/total.
_TQDM_LINE = re.compile(r"^\s*(\d+)%\s*\|.+?\|\s*(\d+)/(\d+)")
_THROTTLE_RESET = re.compile(r"resets in ~?(\d+)\s*s")
#: Words Replicate's models use when their content filter refuses an input or output.
_CONTENT_FILTER_WORDS = ("nsfw", "sensitive", "flagged", "e005", "content policy", "safety")
#: Replicate's own failures, by ``E####`` code or wording (see the module docstring).
_ERROR_CODE = re.compile(r"\bE(\d{4})\b")
_CAPACITY_ERROR_CODES = {"6716"}
_TRANSIENT_ERROR_CODES = {"8765", "9828"}
_CAPACITY_WORDS = ("(code: pa)", "prediction interrupted")
_TRANSIENT_WORDS = ("director:",)


def build(settings: Settings, client: httpx.Client) -> ReplicateAdapter | None:
    if not settings.replicate_api_token:
        return None
    return ReplicateAdapter(
        client=client,
        base_url=settings.replicate_base_url,
        token=settings.replicate_api_token,
        webhook_secret=settings.replicate_webhook_secret,
    )


class ReplicateAdapter(BaseAdapter):
    name = "replicate"
    supports_callbacks = True
    supports_cancel = True

    def __init__(
        self, *, client: httpx.Client, base_url: str, token: str, webhook_secret: str = ""
    ) -> None:
        self._http = ProviderHTTP(
            client=client,
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            classify=_classify,
        )
        self._webhook_secret = webhook_secret

    def submit(self, request: RenderRequest) -> str:
        model = request.model
        if model == WAN_T2V and request.image is not None:
            model = WAN_I2V  # Replicate hosts Wan's image-to-video as its own model
        body: dict[str, Any] = {"input": _input_for(model, request)}
        if request.callback_url:
            body["webhook"] = request.callback_url
            body["webhook_events_filter"] = WEBHOOK_EVENTS
        if ":" in model:  # a pinned version of a community model
            body["version"] = model
            path = "/v1/predictions"
        else:
            path = f"/v1/models/{model}/predictions"
        prediction = self._http.json("POST", path, json=body, creates=True)
        if not isinstance(prediction, dict) or not isinstance(prediction.get("id"), str):
            raise ProviderOutcomeUnknown("provider_bad_answer", "the prediction has no id")
        return prediction["id"]

    def poll(self, task_id: str) -> RenderStatus:
        prediction = self._http.json("GET", f"/v1/predictions/{raw_task_id(task_id)}")
        if not isinstance(prediction, dict):
            raise ProviderTransient("provider_bad_answer", "the prediction is not an object")
        return _status_of(prediction)

    def cancel(self, task_id: str) -> bool:
        self._http.request("POST", f"/v1/predictions/{raw_task_id(task_id)}/cancel")
        return True

    def callback(self, headers: Mapping[str, str], raw_body: bytes) -> CallbackHint:
        """Verify the Standard Webhooks signature (5 min tolerance), then read the id.

        A failure to fetch the secret is not the sender's fault: it raises the
        ``ProviderError`` rather than rejecting what may be a genuine webhook.
        """
        try:
            Webhook(self._secret()).verify(raw_body, dict(headers), json_parse=False)
            prediction = json.loads(raw_body)
        except (WebhookVerificationError, ValueError, binascii.Error) as exc:
            raise CallbackRejected(f"bad Replicate webhook: {exc}") from None
        prediction_id = prediction.get("id") if isinstance(prediction, dict) else None
        if not isinstance(prediction_id, str) or not prediction_id:
            raise CallbackRejected("the webhook body has no prediction id")
        return CallbackHint(task_id=prediction_id, verified=True)

    def health(self) -> None:
        self._http.request("GET", "/v1/account")

    def _secret(self) -> str:
        if not self._webhook_secret:
            answer = self._http.json("GET", "/v1/webhooks/default/secret")
            key = answer.get("key") if isinstance(answer, dict) else None
            if not isinstance(key, str) or not key.startswith("whsec_"):
                raise ProviderTransient("provider_bad_answer", "no webhook signing key")
            self._webhook_secret = key
        return self._webhook_secret


def _input_for(model: str, request: RenderRequest) -> dict[str, Any]:
    """The model's ``input``, per its schema on replicate.com (model API pages):

    - Wan 2.5 t2v: ``prompt``, ``duration`` (integer 5 or 10), ``size`` (``1280*720``…).
    - Wan 2.5 i2v: ``prompt``, ``image``, ``duration``; the ratio follows the image.
    - Seedance 1 Pro and unknown models: ``prompt``, ``duration`` (integer 2 to 12),
      ``aspect_ratio`` ("16:9", "9:16", "1:1"…, ignored with an image), ``image``,
      ``last_frame_image``.
    genhook's 5 and 10 s are valid durations for all of them, and the models' default
    resolutions are kept (Wan 720p, Seedance 1080p).
    """
    fields: dict[str, Any] = {"prompt": request.prompt, "duration": request.duration_seconds}
    if model.startswith("wan-video/"):
        if request.end_image is not None:
            raise ProviderRejected("invalid_request", f"{model} takes no last frame")
        if request.image is None:
            fields["size"] = WAN_SIZES.get(request.aspect_ratio, WAN_SIZES["16:9"])
        else:
            fields["image"] = request.image.url_or_data_url()
        return fields
    fields["aspect_ratio"] = request.aspect_ratio
    if request.image is not None:
        fields["image"] = request.image.url_or_data_url()
    if request.end_image is not None:
        fields["last_frame_image"] = request.end_image.url_or_data_url()
    return fields


def _status_of(prediction: Mapping[str, Any]) -> RenderStatus:
    status = prediction.get("status")
    if status == "starting":
        return RenderStatus(RenderState.QUEUED, JobPhase.QUEUED)
    if status == "processing":
        progress = _progress(prediction.get("logs"))
        return RenderStatus(RenderState.RUNNING, phase_from_progress(progress), progress=progress)
    if status == "succeeded":
        url = _output_url(prediction.get("output"))
        if url is None:
            removed = prediction.get("data_removed")
            message = "the output was deleted (1 hour)" if removed else "no output URL"
            return _failed("provider_failed", f"Replicate succeeded but {message}")
        return RenderStatus(
            RenderState.SUCCEEDED, JobPhase.FINISHING, progress=100.0, output_url=url
        )
    if status == "failed":
        message = str(prediction.get("error") or "Replicate reported a failure")
        return _failed(_failure_code_of(message), message)
    if status == "aborted":
        return _failed(RENDER_CAPACITY, "Replicate aborted the prediction before it started")
    if status == "canceled":
        return RenderStatus(RenderState.CANCELED, JobPhase.RENDERING)
    raise ProviderTransient("provider_bad_answer", f"unknown Replicate status {status!r}")


def _failure_code_of(error: str) -> str:
    """genhook's error code for a failed prediction's ``error`` (module docstring)."""
    lowered = error.lower()
    if any(word in lowered for word in _CONTENT_FILTER_WORDS):
        return "content_policy"
    codes = set(_ERROR_CODE.findall(error))
    if codes & _CAPACITY_ERROR_CODES or any(word in lowered for word in _CAPACITY_WORDS):
        return RENDER_CAPACITY
    if codes & _TRANSIENT_ERROR_CODES or lowered.startswith(_TRANSIENT_WORDS):
        return RENDER_TRANSIENT
    return "provider_failed"


def _failed(code: str, message: str) -> RenderStatus:
    return RenderStatus(
        RenderState.FAILED, JobPhase.RENDERING, error_code=code, error_message=message
    )


def _output_url(output: Any) -> str | None:
    """``output`` is whatever the model returns: for video models a URL or a list of URLs."""
    if isinstance(output, list):
        output = next((item for item in output if isinstance(item, str)), None)
    return output if isinstance(output, str) and output else None


def _progress(logs: Any) -> float | None:
    """0 to 100 from the last tqdm line in the logs, or None when there is none."""
    if not isinstance(logs, str):
        return None
    for line in reversed(logs.splitlines()):
        match = _TQDM_LINE.match(line)
        if match:
            return min(100.0, float(match.group(1)))
    return None


def _classify(response: httpx.Response) -> ProviderError:
    problem = json_body(response)
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    title = problem.get("title")
    message = f"Replicate {response.status_code}: {f'{title}: ' if title else ''}{detail}"
    status = response.status_code
    if status == 429:
        wait = retry_after_seconds(response)
        if wait is None and (reset := _THROTTLE_RESET.search(detail)):
            wait = float(reset.group(1))
        return ProviderRateLimited("rate_limited", message, status=status, retry_after_seconds=wait)
    if status in (401, 403):
        return ProviderQuotaExhausted("auth_failed", message, status=status)
    if status == 402:
        return ProviderQuotaExhausted("quota_exhausted", message, status=status)
    if 400 <= status < 500 and any(word in detail.lower() for word in _CONTENT_FILTER_WORDS):
        return ProviderRejected("content_policy", message, status=status)
    if status in (400, 404, 422):
        return ProviderRejected("invalid_request", message, status=status)
    if status == 503:
        wait = retry_after_seconds(response)
        return ProviderCapacity("capacity", message, status=status, retry_after_seconds=wait)
    return by_status(response, "provider_error", message)
