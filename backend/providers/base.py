"""What genhook needs from a video provider, whatever its API looks like.

An adapter (one module per provider beside this one) only translates: genhook's
:class:`RenderRequest` into the provider's create call, the provider's task into a
:class:`RenderStatus`, its callbacks into a :class:`CallbackHint`, and its errors into one
of the few :class:`~backend.errors.ProviderError` kinds that routing acts on
(``backend.errors`` draws them). Nothing else escapes an adapter. What every adapter
shares (the HTTP call, Retry-After, transport errors) lives in ``backend/providers/http.py``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from backend.jobs.states import JobPhase


@dataclass(frozen=True)
class ImageInput:
    """A first- or last-frame image, checked and kept by genhook.

    ``url`` is a signed, expiring link to genhook's own copy when genhook has a public
    address (``GENHOOK_PUBLIC_BASE_URL``); otherwise ``None``, and adapters send the bytes.
    """

    data: bytes
    content_type: str
    width: int
    height: int
    url: str | None = None

    def base64(self) -> str:
        """The bytes as plain base64, no ``data:`` prefix (Kling, Veo)."""
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{self.base64()}"

    def url_or_data_url(self) -> str:
        """The link if the provider can reach genhook, else an inline ``data:`` URL."""
        return self.url or self.data_url()


@dataclass(frozen=True)
class RenderRequest:
    #: genhook's job id; adapters send it as an idempotency key where the provider has one.
    job_id: str
    #: The provider's own model name (a catalog route's ``model``).
    model: str
    prompt: str
    duration_seconds: int
    aspect_ratio: str
    image: ImageInput | None = None
    end_image: ImageInput | None = None
    #: Where the provider may push status changes, in the form the adapter must send it.
    callback_url: str | None = None


class RenderState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (RenderState.SUCCEEDED, RenderState.FAILED, RenderState.CANCELED)


#: Failure codes of a render that died of the provider's trouble, not the request's: the
#: job fails over to its next route instead of failing (``backend/jobs/failover.py``).
RENDER_CAPACITY = "capacity"
RENDER_TRANSIENT = "provider_transient"
RETRYABLE_RENDER_FAILURES = frozenset({RENDER_CAPACITY, RENDER_TRANSIENT})


@dataclass(frozen=True)
class RenderStatus:
    state: RenderState
    phase: JobPhase
    eta_seconds: float | None = None
    #: 0-100 where the provider gives a number (Runway's 0-1 is scaled).
    progress: float | None = None
    #: Place in the provider's queue, 0 = next (fal).
    queue_position: int | None = None
    output_url: str | None = None
    #: For a FAILED render: ``RENDER_CAPACITY`` or ``RENDER_TRANSIENT`` when the provider's
    #: own trouble killed it (another route may render it), ``content_policy`` or
    #: ``invalid_request`` when the request itself was refused, else ``provider_failed``.
    error_code: str | None = None
    error_message: str | None = None
    #: What the task cost the operator, in the provider's own units, where it says
    #: (Kling's ``final_unit_deduction``, BytePlus's completion tokens).
    cost: float | None = None


@dataclass(frozen=True)
class CallbackHint:
    """What a provider's callback says, once its signature (if it has one) checks out.

    Only ``task_id`` is acted on: genhook polls that task at once rather than trust a body
    that may be unsigned. ``task_id`` is the provider's raw id (after the last ``|`` of a
    handle), or None for a handshake that concerns no task (MiniMax's challenge), in which
    case ``reply`` is the JSON genhook must answer with.
    """

    task_id: str | None
    #: True when the body was signed by the provider and the signature verified.
    verified: bool = False
    reply: dict[str, Any] | None = None


class CallbackRejected(Exception):
    """A callback whose signature is missing, wrong or stale; answered with 401."""


class Provider(Protocol):
    """One provider's adapter. ``name`` is the catalog's ``provider`` value."""

    name: str

    def submit(self, request: RenderRequest) -> str:
        """Start a render; returns the provider's task id for it.

        Raises :class:`~backend.errors.ProviderOutcomeUnknown` when the request may or may
        not have created a task (e.g. a timeout after sending it).
        """
        ...

    def find_task(self, job_id: str) -> str | None:
        """The task created for ``job_id`` (sent as idempotency key), if any.

        Only adapters whose provider can search by our key answer; the others return
        ``None`` and ``supports_find_task`` is False.
        """
        ...

    def poll(self, task_id: str) -> RenderStatus:
        """Where that render is now."""
        ...

    def cancel(self, task_id: str) -> bool:
        """Ask the provider to stop the task; False when its API has no cancel."""
        ...

    def callback(self, headers: Mapping[str, str], raw_body: bytes) -> CallbackHint:
        """Verify (where the provider signs) and read one of its callbacks.

        Raises :class:`CallbackRejected` for a forged, stale or unreadable one.
        """
        ...

    def output_headers(self, url: str) -> dict[str, str]:
        """Headers genhook needs to download a finished video from ``url`` (Veo's files
        need the API key); sent only to the provider's own host, never after a redirect
        elsewhere."""
        ...

    def health(self) -> None:
        """A cheap authenticated call; raises a ``ProviderError`` when it fails."""
        ...

    #: Whether :meth:`find_task` can answer (the provider searches by our key).
    supports_find_task: bool
    #: Whether :meth:`cancel` can stop a task at this provider.
    supports_cancel: bool
    #: Whether the provider pushes status changes to a callback URL (Runway does not).
    supports_callbacks: bool


def callback_json(raw_body: bytes) -> dict[str, Any]:
    """A callback's body as a JSON object, or :class:`CallbackRejected`."""
    try:
        body = json.loads(raw_body)
    except ValueError:
        raise CallbackRejected("the body is not JSON") from None
    if not isinstance(body, dict):
        raise CallbackRejected("the body is not a JSON object")
    return body


def unsigned_hint(raw_body: bytes, id_field: str, *, numeric_ids: bool = False) -> CallbackHint:
    """The hint in an unsigned callback that carries the task object (Kling, Luma, Ark,
    MiniMax): its id, for genhook to poll; nothing in it is trusted. ``numeric_ids``
    accepts a JSON number as the id (MiniMax)."""
    task_id = callback_json(raw_body).get(id_field)
    if numeric_ids and isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)
    if not isinstance(task_id, str) or not task_id:
        raise CallbackRejected(f"no {id_field} in the callback")
    return CallbackHint(task_id=task_id, verified=False)


#: Separates what an adapter needs to poll a task from the provider's id in a handle.
HANDLE_SEPARATOR = "|"


def raw_task_id(handle: str) -> str:
    """The provider's own task id inside a handle such as ``image2video|8474…``."""
    return handle.rpartition(HANDLE_SEPARATOR)[2]


def phase_from_progress(progress: float | None) -> JobPhase:
    """A rendering phase faked from a 0-100 progress number; no provider reports phases."""
    if progress is None:
        return JobPhase.RENDERING
    if progress < 10:
        return JobPhase.PREPARING
    if progress < 75:
        return JobPhase.RENDERING
    if progress < 90:
        return JobPhase.ENCODING
    return JobPhase.FINISHING


class BaseAdapter:
    """Defaults for what some providers lack: no lookup by our key, no cancel, no callbacks."""

    name: str = ""
    supports_find_task = False
    supports_cancel = False
    supports_callbacks = False

    def find_task(self, job_id: str) -> str | None:
        return None

    def cancel(self, task_id: str) -> bool:
        return False

    def callback(self, headers: Mapping[str, str], raw_body: bytes) -> CallbackHint:
        raise CallbackRejected(f"{self.name} sends no callbacks")

    def output_headers(self, url: str) -> dict[str, str]:
        return {}
