"""One HTTP attempt at a webhook, reported as data rather than exceptions."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from backend.store.deliveries import MAX_LOGGED_BODY_CHARS

USER_AGENT = "genhook-webhooks/0.1"


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post_webhook(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], timeout_seconds: float
) -> AttemptResult:
    """POST once, never following redirects, reading at most what the log keeps."""
    started = time.perf_counter()
    try:
        with client.stream(
            "POST",
            url,
            content=body,
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=timeout_seconds,
            follow_redirects=False,
        ) as response:
            excerpt = _read_excerpt(response)
            status = response.status_code
    except httpx.HTTPError as exc:
        return AttemptResult(None, _ms_since(started), f"{type(exc).__name__}: {exc}", None)
    error = None if 200 <= status < 300 else f"receiver answered HTTP {status}"
    return AttemptResult(status, _ms_since(started), error, excerpt)


def _read_excerpt(response: httpx.Response) -> str:
    chunks = bytearray()
    for chunk in response.iter_bytes():
        chunks.extend(chunk)
        if len(chunks) >= MAX_LOGGED_BODY_CHARS:
            break
    return bytes(chunks[:MAX_LOGGED_BODY_CHARS]).decode("utf-8", errors="replace")


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
