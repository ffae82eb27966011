"""Luma AI's Dream Machine API (``api.lumalabs.ai/dream-machine/v1``), for Ray 2.

Auth is ``Authorization: Bearer <key>``. Paths used, relative to ``GENHOOK_LUMA_BASE_URL``:
``POST /generations/video`` (create), ``GET /generations/{id}`` (status) and ``GET /credits``
(health). The handle is Luma's generation id (a UUID) as is.

Sources: lumalabs/lumaai-python c00ac17 (``resources/generations/video.py``,
``types/generations/video_create_params.py``, ``types/generation.py``,
``types/credit_get_response.py``) and docs.lumalabs.ai (``/docs/errors``,
``/docs/rate-limits``, changelog "Callbacks & Credits Balance"). Quirks handled:

- ``duration`` is a string and only ``"5s"``/``"9s"`` exist, so genhook's 10 s is sent as
  ``"9s"``; ``resolution`` is pinned to ``"720p"``; 16:9, 9:16 and 1:1 go through as they are.
- First/last frames are ``keyframes.frame0``/``frame1`` ``{"type": "image", "url"}``: Luma
  takes image URLs only ("currently this is the only way to pass an image"), so without
  genhook's public link the request is refused here, before anything is paid for.
- States are ``queued``, ``dreaming``, ``completed``, ``failed``; no progress number and no
  queue position. Moderation is reported after submission, as a ``failed`` generation whose
  ``failure_reason`` reads "Advanced prompt moderation failed", "Frame moderation failed" or
  "Contains blacklisted words".
- A ``failed`` generation has free text only (``failure_reason``; the newer Agents API's
  ``failure_code`` is not on Dream Machine's Generation type), read by
  :func:`_failure_code`: moderation and blacklisted words are ``content_policy`` and
  "Failed to read user input frames" (our link) ``invalid_request`` [C: docs/errors];
  "Prompt processing failed" ("our language system ran into issues") is Luma's own trouble,
  ``RENDER_TRANSIENT`` [C: text; I: that another route fixes it]; "internal", "server
  error", "timeout"/"timed out" are ``RENDER_TRANSIENT`` and "capacity", "overload",
  "busy" ``RENDER_CAPACITY`` [I: Dream Machine documents no wording for its own trouble
  nor any capacity failure]; anything else ("Job failed") is ``provider_failed``.
- No cancel (``DELETE`` deletes the record; it is not presented as a cancel), no
  idempotency key and no lookup by our key.
- Callbacks POST the Generation object, unsigned: only a hint to poll that id at once.
- Errors carry ``{"detail": ...}`` (a string, or FastAPI's list for schema errors [I]). HTTP
  codes for throttling and credits are undocumented for Dream Machine [I]: like the newer
  Luma Agents API (docs.agents.lumalabs.ai error-handling), 429 is read as either the
  per-minute limit or the concurrent-generations cap (10 on the Build tier), told apart by
  its text, and 402, or any refusal that speaks of credits, as our balance running out.
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
    ImageInput,
    RenderRequest,
    RenderState,
    RenderStatus,
    raw_task_id,
    unsigned_hint,
)
from backend.providers.http import ProviderHTTP, by_status, json_body, retry_after_seconds
from backend.settings import Settings

#: genhook's durations in seconds -> Luma's; 10 s is not offered, 9 s is the nearest.
DURATIONS = {5: "5s", 10: "9s"}
RESOLUTION = "720p"

#: Words of a ``failure_reason`` or error ``detail`` that mean moderation refused the input.
_MODERATION_WORDS = ("moderation", "blacklisted")
#: Words of an error ``detail`` that mean our account cannot pay.
_CREDIT_WORDS = ("credit", "balance", "insufficient", "billing")
#: ``failure_reason`` when Luma could not download a keyframe: our link, not Luma, is at fault.
_UNREADABLE_FRAMES = "failed to read user input frames"
#: Words of a ``failure_reason`` that mean Luma's own trouble (see the module docstring).
_CAPACITY_WORDS = ("capacity", "overload", "busy")
_TRANSIENT_WORDS = ("prompt processing failed", "internal", "server error", "timeout", "timed out")


def build(settings: Settings, client: httpx.Client) -> LumaAdapter | None:
    if not settings.luma_api_key:
        return None
    return LumaAdapter(
        client=client, base_url=settings.luma_base_url, api_key=settings.luma_api_key
    )


class LumaAdapter(BaseAdapter):
    name = "luma"
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
            "aspect_ratio": request.aspect_ratio,
            "duration": _duration(request.duration_seconds),
            "resolution": RESOLUTION,
        }
        keyframes = _keyframes(request.image, request.end_image)
        if keyframes:
            body["keyframes"] = keyframes
        if request.callback_url:
            body["callback_url"] = request.callback_url
        generation = self._http.json("POST", "/generations/video", json=body, creates=True)
        generation_id = generation.get("id") if isinstance(generation, dict) else None
        if not isinstance(generation_id, str) or not generation_id:
            # A 2xx came back, so a generation may well exist; we cannot name it.
            raise ProviderOutcomeUnknown("provider_bad_answer", "Luma answered without an id")
        return generation_id

    def poll(self, task_id: str) -> RenderStatus:
        generation = self._http.json("GET", f"/generations/{raw_task_id(task_id)}")
        if not isinstance(generation, dict):
            raise ProviderTransient("provider_bad_answer", "the answer is not a JSON object")
        return _status_of(generation)

    def callback(self, headers: Mapping[str, str], raw_body: bytes) -> CallbackHint:
        """Luma POSTs the Generation object, unsigned: its ``id`` is only a hint."""
        return unsigned_hint(raw_body, "id")

    def health(self) -> None:
        self._http.request("GET", "/credits")


def _duration(seconds: int) -> str:
    """Luma's duration string for genhook's 5 or 10 s (anything else: the nearest)."""
    if seconds in DURATIONS:
        return DURATIONS[seconds]
    return "5s" if seconds < 7 else "9s"


def _keyframes(image: ImageInput | None, end_image: ImageInput | None) -> dict[str, Any]:
    frames: dict[str, Any] = {}
    for key, frame in (("frame0", image), ("frame1", end_image)):
        if frame is None:
            continue
        if frame.url is None:
            raise ProviderRejected(
                "image_needs_public_url",
                "Luma only fetches keyframes from a URL; set GENHOOK_PUBLIC_BASE_URL",
            )
        frames[key] = {"type": "image", "url": frame.url}
    return frames


def _status_of(generation: Mapping[str, Any]) -> RenderStatus:
    state = generation.get("state")
    if state == "queued":
        return RenderStatus(RenderState.QUEUED, JobPhase.QUEUED)
    if state == "dreaming":
        return RenderStatus(RenderState.RUNNING, JobPhase.RENDERING)
    if state == "completed":
        video = (generation.get("assets") or {}).get("video")
        if not video:
            return _failed("provider_failed", "Luma reported completion without a video")
        return RenderStatus(RenderState.SUCCEEDED, JobPhase.FINISHING, output_url=video)
    if state == "failed":
        reason = str(generation.get("failure_reason") or "Luma reported a failure")
        return _failed(_failure_code(reason), reason)
    raise ProviderTransient("provider_bad_answer", f"unknown Luma state {state!r}")


def _failure_code(reason: str) -> str:
    lowered = reason.lower()
    if any(word in lowered for word in _MODERATION_WORDS):
        return "content_policy"
    if _UNREADABLE_FRAMES in lowered:
        return "invalid_request"
    if any(word in lowered for word in _CAPACITY_WORDS):
        return RENDER_CAPACITY
    if any(word in lowered for word in _TRANSIENT_WORDS):
        return RENDER_TRANSIENT
    return "provider_failed"


def _failed(code: str, message: str) -> RenderStatus:
    return RenderStatus(
        RenderState.FAILED, JobPhase.RENDERING, error_code=code, error_message=message
    )


def _classify(response: httpx.Response) -> ProviderError:
    status = response.status_code
    detail = _detail(json_body(response)) or response.reason_phrase
    message = f"Luma {status}: {detail}"
    lowered = detail.lower()
    if status == 429:
        retry_after = retry_after_seconds(response)
        if "concurren" in lowered:
            return ProviderCapacity(
                "capacity", message, status=status, retry_after_seconds=retry_after
            )
        return ProviderRateLimited(
            "rate_limited", message, status=status, retry_after_seconds=retry_after
        )
    if status == 402 or (400 <= status < 500 and any(w in lowered for w in _CREDIT_WORDS)):
        return ProviderQuotaExhausted("quota_exhausted", message, status=status)
    if status in (401, 403):
        return ProviderQuotaExhausted("auth_failed", message, status=status)
    if status in (400, 422):
        moderated = any(word in lowered for word in _MODERATION_WORDS)
        code = "content_policy" if moderated else "invalid_request"
        return ProviderRejected(code, message, status=status)
    return by_status(response, "provider_error", message)


def _detail(body: Mapping[str, Any]) -> str:
    """The ``detail`` of an error body: a message, or FastAPI's list of field errors."""
    detail = body.get("detail")
    if isinstance(detail, list):
        return "; ".join(_field_error(item) for item in detail)
    if detail:
        return str(detail)
    return str(body.get("message") or body.get("error") or "")


def _field_error(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc") or [] if part != "body")
    return f"{where}: {item.get('msg')}" if where else str(item.get("msg"))
