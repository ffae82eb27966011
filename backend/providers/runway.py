"""Runway's developer API (``api.dev.runwayml.com``): Gen-4.5 and the other models it hosts.

Auth is a bearer API key plus the dated ``X-Runway-Version: 2024-11-06`` header, which
Runway requires on every call (400 without a valid one). Paths: ``POST /v1/text_to_video``
or ``POST /v1/image_to_video`` (camelCase bodies, answer ``{"id"}``), ``GET /v1/tasks/{id}``,
``DELETE /v1/tasks/{id}`` (cancel, or delete a finished task) and ``GET /v1/organization``
(credit balance, for health). Handles are Runway's task ids as they are.

Quirks handled (sources: runwayml/sdk-python c604e0e, files named below; Runway's docs
pages named below; [3P] where only community reports say so):

- Poll-only: no callback field, no webhooks (no such resource in the SDK), so
  ``request.callback_url`` is ignored and :meth:`callback` is BaseAdapter's refusal.
- ``THROTTLED`` is a *queued* task waiting for one of our per-model concurrency slots
  (docs usage/tiers), never an error; ``CANCELLED`` has two Ls; ``RUNNING`` carries a 0-1
  ``progress`` (types/task_retrieve_response.py), scaled here to 0-100.
- Insufficient credits has no code of its own: a plain 400 whose ``error`` reads "You do not
  have enough credits to run this task." [3P: runwayml/sdk-node#28 and several integrations].
  Daily generation caps are a 429 at create (docs usage/tiers), treated as rate limiting.
- No idempotency key (the SDK sets none), so ``find_task`` cannot help after a lost answer.
- Output URLs expire in 24-48 h; fetching the task again hands out fresh ones.

A ``FAILED`` task is classified by its ``failureCode`` (:func:`_failure_code_of`):

- ``SAFETY.*`` and ``INPUT_PREPROCESSING.SAFETY.*``: ``content_policy``, "do not retry"
  [C: docs errors/task-failures].
- ``INTERNAL.BAD_OUTPUT.*`` ("rejected by our internal systems for quality or system error
  reasons", "you may retry") and ``INPUT_PREPROCESSING.INTERNAL`` ("a problem performing
  content moderation"): ``RENDER_TRANSIENT`` [C: same page; 3P: "may retry, but add a
  delay" for the latter]. A bare ``INTERNAL`` (or any other ``INTERNAL.*``) likewise [3P:
  the page as quoted by several integrations; the stored copy was cut short]. The page
  warns ``BAD_OUTPUT`` retries are "not likely to succeed" on the same inputs; another
  route is a different model, so it is still worth one.
- ``THIRD_PARTY.UNAVAILABLE`` (a model Runway hosts for a third party could not be
  reached): ``RENDER_CAPACITY`` [3P: the code and "wait, then retry" as integrations quote
  the page; I: that it means capacity]. Runway has no capacity failure of its own: its
  concurrency cap queues a task ``THROTTLED`` instead of failing it.
- ``ASSET.INVALID`` (an input asset Runway cannot use): ``invalid_request`` [3P].
- Anything else, a missing code included: ``provider_failed``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

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
    ImageInput,
    RenderRequest,
    RenderState,
    RenderStatus,
    phase_from_progress,
    raw_task_id,
)
from backend.providers.http import ProviderHTTP, by_status, json_body, retry_after_seconds
from backend.settings import Settings

#: The API version genhook speaks (the SDK's default, runwayml/_client.py).
RUNWAY_VERSION = "2024-11-06"

#: genhook's ratios as Runway's pixel sizes. Per types/*_create_params.py, gen4.5 takes
#: 1280:720 and 720:1280 for text-to-video and also 960:960 (and 1104:832, 832:1104,
#: 1584:672) for image-to-video: a text-only 1:1 request is refused by Runway with a 400.
RATIOS = {"16:9": "1280:720", "9:16": "720:1280", "1:1": "960:960"}

#: Models that take only some durations (types/*_create_params.py); gen4.5 takes 2-10 s.
DURATIONS = {"veo3.1": (4, 6, 8), "veo3.1_fast": (4, 6, 8)}

#: Largest image Runway takes inline as a data URI (docs assets/inputs: 5 MB; URLs 16 MB).
MAX_DATA_URI_BYTES = 5 * 1024 * 1024

#: The 400 message Runway sends when the organisation's credits cannot pay for a task.
_NO_CREDITS = "not have enough credits"
#: failureCode prefixes that mean moderation (docs errors/task-failures).
_MODERATION_PREFIXES = ("SAFETY.", "INPUT_PREPROCESSING.SAFETY.")
#: failureCodes of Runway's own trouble, worth rendering elsewhere (see module docstring).
_TRANSIENT_CODES = ("INTERNAL", "INPUT_PREPROCESSING.INTERNAL")
_TRANSIENT_PREFIXES = ("INTERNAL.",)
_CAPACITY_CODES = ("THIRD_PARTY.UNAVAILABLE",)
_INVALID_PREFIXES = ("ASSET.",)


def build(settings: Settings, client: httpx.Client) -> RunwayAdapter | None:
    if not settings.runway_api_key:
        return None
    return RunwayAdapter(
        client=client, base_url=settings.runway_base_url, api_key=settings.runway_api_key
    )


class RunwayAdapter(BaseAdapter):
    name = "runway"
    supports_cancel = True

    def __init__(self, *, client: httpx.Client, base_url: str, api_key: str) -> None:
        self._http = ProviderHTTP(
            client=client,
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}", "X-Runway-Version": RUNWAY_VERSION},
            classify=_classify,
        )

    def submit(self, request: RenderRequest) -> str:
        # Runway has no callback field: request.callback_url is ignored and genhook polls.
        body: dict[str, Any] = {
            "model": request.model,
            "promptText": request.prompt,
            "ratio": RATIOS.get(request.aspect_ratio, request.aspect_ratio),
            "duration": _duration(request.model, request.duration_seconds),
        }
        path = "/v1/text_to_video"
        if request.image or request.end_image:
            path = "/v1/image_to_video"
            body["promptImage"] = _prompt_image(request.image, request.end_image)
        answer = self._http.json("POST", path, json=body, creates=True)
        task_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ProviderTransient("provider_bad_answer", "Runway answered without a task id")
        return task_id

    def poll(self, task_id: str) -> RenderStatus:
        task = self._http.json("GET", f"/v1/tasks/{raw_task_id(task_id)}")
        if not isinstance(task, dict):
            raise ProviderTransient("provider_bad_answer", "the task is not a JSON object")
        return _status_of(task)

    def cancel(self, task_id: str) -> bool:
        """Cancels a pending, throttled or running task; a finished one is deleted."""
        self._http.request("DELETE", f"/v1/tasks/{raw_task_id(task_id)}", headers={"Accept": "*/*"})
        return True

    def health(self) -> None:
        organization = self._http.json("GET", "/v1/organization")
        balance = organization.get("creditBalance") if isinstance(organization, dict) else None
        if isinstance(balance, int | float) and balance <= 0:
            raise ProviderQuotaExhausted("quota_exhausted", "Runway credit balance is 0")


def _duration(model: str, seconds: int) -> int:
    """The nearest duration the model takes, the longer one on a tie (never less video)."""
    allowed = DURATIONS.get(model)
    if not allowed:
        return seconds
    return min(allowed, key=lambda option: (abs(option - seconds), -option))


def _prompt_image(first: ImageInput | None, last: ImageInput | None) -> Any:
    """One frame as a plain string; with a last frame, the ``[{uri, position}]`` form.

    Only some models take a ``last`` position (veo3.1, seedance2 per
    types/image_to_video_create_params.py; gen4.5 takes ``first`` only): Runway itself
    refuses the others with a 400, which comes back as ``invalid_request``.
    """
    frames = [(image, position) for image, position in ((first, "first"), (last, "last")) if image]
    if len(frames) == 1 and frames[0][1] == "first":
        return _image_uri(frames[0][0])
    return [{"uri": _image_uri(image), "position": position} for image, position in frames]


def _image_uri(image: ImageInput) -> str:
    """The image's URL when Runway can fetch it (HTTPS, a domain name), else a data URI."""
    if image.url and _fetchable_by_runway(image.url):
        return image.url
    data_url = image.data_url()
    if len(data_url) > MAX_DATA_URI_BYTES:
        raise ProviderRejected(
            "image_needs_public_url",
            "Runway takes images over 5 MB only by HTTPS URL; set GENHOOK_PUBLIC_BASE_URL",
        )
    return data_url


def _fetchable_by_runway(url: str) -> bool:
    """Runway fetches only ``https://`` URLs whose host is a name, not an IP (assets/inputs)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return False
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return True
    return False


def _status_of(task: Mapping[str, Any]) -> RenderStatus:
    status = task.get("status")
    if status in ("PENDING", "THROTTLED"):
        return RenderStatus(RenderState.QUEUED, JobPhase.QUEUED)
    if status == "RUNNING":
        progress = _percent(task.get("progress"))
        return RenderStatus(RenderState.RUNNING, phase_from_progress(progress), progress=progress)
    if status == "SUCCEEDED":
        output = task.get("output") or []
        if not output or not isinstance(output[0], str):
            return _failed("provider_failed", "Runway reported success without an output")
        return RenderStatus(
            RenderState.SUCCEEDED, JobPhase.FINISHING, progress=100.0, output_url=output[0]
        )
    if status == "FAILED":
        failure_code = str(task.get("failureCode") or "")
        detail = f"Runway {failure_code or 'FAILED'}: {task.get('failure') or 'task failed'}"
        return _failed(_failure_code_of(failure_code), detail)
    if status == "CANCELLED":
        return RenderStatus(RenderState.CANCELED, JobPhase.RENDERING)
    raise ProviderTransient("provider_bad_answer", f"unknown Runway task status {status!r}")


def _failure_code_of(failure_code: str) -> str:
    """genhook's error code for a ``failureCode`` (module docstring says which are sure)."""
    if failure_code.startswith(_MODERATION_PREFIXES):
        return "content_policy"
    if failure_code.startswith(_INVALID_PREFIXES):
        return "invalid_request"
    if failure_code in _CAPACITY_CODES:
        return RENDER_CAPACITY
    if failure_code in _TRANSIENT_CODES or failure_code.startswith(_TRANSIENT_PREFIXES):
        return RENDER_TRANSIENT
    return "provider_failed"


def _percent(progress: Any) -> float | None:
    if not isinstance(progress, int | float):
        return None
    return round(min(max(float(progress), 0.0), 1.0) * 100, 1)


def _failed(code: str, message: str) -> RenderStatus:
    return RenderStatus(
        RenderState.FAILED, JobPhase.RENDERING, error_code=code, error_message=message
    )


def _classify(response: httpx.Response) -> ProviderError:
    """Runway's envelope is ``{"error": "...", "issues"?: [...], "docUrl"?}`` (docs
    errors/errors); the status says nearly everything, the text the rest."""
    status = response.status_code
    message = f"Runway {status}: {_error_text(json_body(response)) or response.reason_phrase}"
    if status == 400 and _NO_CREDITS in message.lower():
        return ProviderQuotaExhausted("quota_exhausted", message, status=status)
    if status == 400:
        return ProviderRejected("invalid_request", message, status=status)
    if status == 401:
        return ProviderQuotaExhausted("auth_failed", message, status=status)
    if status == 404:
        return ProviderRejected("not_found", message, status=status)
    if status == 429:
        return ProviderRateLimited(
            "rate_limited",
            message,
            status=status,
            retry_after_seconds=retry_after_seconds(response),
        )
    if status in (502, 503):  # "Runway is shedding load"
        return ProviderCapacity(
            "capacity", message, status=status, retry_after_seconds=retry_after_seconds(response)
        )
    return by_status(response, "provider_error", message)


def _error_text(body: Mapping[str, Any]) -> str:
    """The ``error`` text, followed by each validation issue as ``path: message``."""
    text = str(body.get("error") or "")
    issues = body.get("issues")
    if isinstance(issues, list):
        details = [
            f"{'.'.join(str(p) for p in issue.get('path') or []) or 'body'}: {issue.get('message')}"
            for issue in issues
            if isinstance(issue, dict)
        ]
        if details:
            text = f"{text} ({'; '.join(details)})"
    return text
