"""What genhook needs from a video provider, whatever its API looks like.

Adapters translate their provider's HTTP errors into ``ProviderTransient`` (retry or fail
over) or ``ProviderRejected`` (give up) from ``backend.errors``, and nothing else escapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from backend.jobs.states import JobPhase


@dataclass(frozen=True)
class RenderRequest:
    #: genhook's job id; adapters send it as an idempotency key where the provider has one.
    job_id: str
    model: str
    prompt: str
    duration_seconds: int
    aspect_ratio: str


class RenderState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class RenderStatus:
    state: RenderState
    phase: JobPhase
    eta_seconds: float | None = None
    output_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class Provider(Protocol):
    name: str

    def submit(self, request: RenderRequest) -> str:
        """Start a render; returns the provider's id for it."""
        ...

    def poll(self, provider_job_id: str) -> RenderStatus:
        """Where that render is now."""
        ...
