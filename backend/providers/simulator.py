"""Adapter for genhook's own render-farm simulator (``backend/simulator``)."""

from __future__ import annotations

from typing import Any

import httpx

from backend.errors import ProviderRejected, ProviderTransient
from backend.jobs.states import JobPhase
from backend.providers.base import BaseAdapter, RenderRequest, RenderState, RenderStatus

_PHASES = {p.value: p for p in JobPhase}


class SimulatorProvider(BaseAdapter):
    """Talks the simulator's native ``/v1/renders`` protocol over httpx: genhook's own
    test double for "a provider", with none of a real one's quirks."""

    def __init__(self, *, name: str, base_url: str, client: httpx.Client) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.client = client

    def submit(self, request: RenderRequest) -> str:
        body = {
            "model": request.model,
            "prompt": request.prompt,
            "duration_seconds": request.duration_seconds,
            "aspect_ratio": request.aspect_ratio,
        }
        response = self._call(
            "POST",
            "/v1/renders",
            json=body,
            headers={"Idempotency-Key": request.job_id},
        )
        return str(response["id"])

    def poll(self, provider_job_id: str) -> RenderStatus:
        data = self._call("GET", f"/v1/renders/{provider_job_id}")
        status = data["status"]
        if status == "succeeded":
            return RenderStatus(
                RenderState.SUCCEEDED, JobPhase.FINISHING, 0.0, output_url=data["output_url"]
            )
        if status == "failed":
            error = data.get("error") or {}
            return RenderStatus(
                RenderState.FAILED,
                JobPhase.RENDERING,
                error_code=error.get("code", "provider_failed"),
                error_message=error.get("message", "the provider reported a failure"),
            )
        phase = _PHASES.get(status, JobPhase.QUEUED)
        return RenderStatus(
            RenderState.QUEUED if phase is JobPhase.QUEUED else RenderState.RUNNING,
            phase,
            data.get("eta_seconds"),
            progress=None if data.get("progress") is None else 100 * float(data["progress"]),
            queue_position=data.get("queue_position"),
        )

    def health(self) -> None:
        self._call("GET", "/healthz")

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.client.request(method, self.base_url + path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderTransient("provider_timeout", str(exc) or "timed out") from None
        except httpx.TransportError as exc:
            raise ProviderTransient("provider_unreachable", str(exc)) from None
        if response.is_success:
            data: dict[str, Any] = response.json()
            return data
        code, message = _error_of(response)
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderTransient(
                code,
                message,
                status=response.status_code,
                retry_after_seconds=_retry_after(response),
            )
        raise ProviderRejected(code, message, status=response.status_code)


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    return (
        error.get("code") or f"http_{response.status_code}",
        error.get("message") or response.reason_phrase,
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
