"""One HTTP attempt at a webhook, reported as data rather than exceptions.

The delivery log shows the start of the receiver's answer (``MAX_LOGGED_BODY_CHARS``), so a
tenant can see why its receiver refused. What a non-public address answered is shown only
to an account an operator allowed private targets: reached through the operator's
network-wide ``webhook_allowed_networks``, an internal service's answer is never kept (its
first bytes are read and dropped, so that a short answer frees the connection for reuse).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

import httpx

from backend.errors import UnsafeWebhookTarget
from backend.store.deliveries import MAX_LOGGED_BODY_CHARS
from backend.webhooks.guarded_transport import total_time_limit
from backend.webhooks.url_guard import is_public

USER_AGENT = "genhook-webhooks/0.1"


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None
    #: The receiver's ``Retry-After`` header, verbatim.
    retry_after: str | None = None
    #: The guard refused the destination's address; nothing was sent.
    refused: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post_webhook(
    client: httpx.Client,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_seconds: float,
    *,
    private_reply_shown: bool = False,
) -> AttemptResult:
    """POST once, never following redirects, reading at most what the log keeps, all within
    ``timeout_seconds`` in total. ``private_reply_shown``: the account may see what a
    non-public address answers (it is allowed private targets)."""
    started = time.perf_counter()
    try:
        with (
            total_time_limit(timeout_seconds),
            client.stream(
                "POST",
                url,
                content=body,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers},
                timeout=timeout_seconds,
                follow_redirects=False,
            ) as response,
        ):
            shown = private_reply_shown or _peer_is_public(response)
            read = _read_excerpt(response)  # read even if not shown: see _read_excerpt
            excerpt = read if shown else None
            status = response.status_code
            retry_after = response.headers.get("Retry-After")
    except UnsafeWebhookTarget as exc:
        return AttemptResult(None, _ms_since(started), f"refused: {exc}", None, refused=True)
    except httpx.InvalidURL as exc:
        # Stored before URLs were checked with this parser: no attempt can ever succeed.
        why = f"refused: not a valid URL: {exc}"
        return AttemptResult(None, _ms_since(started), why, None, refused=True)
    except httpx.HTTPError as exc:
        return AttemptResult(None, _ms_since(started), f"{type(exc).__name__}: {exc}", None)
    if 200 <= status < 300:
        error = None
    elif 300 <= status < 400:
        error = f"receiver answered HTTP {status}; redirects are not followed"
    else:
        error = f"receiver answered HTTP {status}"
    return AttemptResult(status, _ms_since(started), error, excerpt, retry_after)


def _peer_is_public(response: httpx.Response) -> bool:
    """Whether the address the answer came from is public (unknown counts as private)."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        return is_public(ipaddress.ip_address(str(peer[0]).partition("%")[0]))
    except ValueError:
        return False


def _read_excerpt(response: httpx.Response) -> str:
    """At most ``MAX_LOGGED_BODY_CHARS`` bytes of the body; the rest is never read. An answer
    read to its end leaves its keep-alive connection to the next delivery (httpcore closes a
    connection whose response was closed unread: one connect, one DNS check per webhook)."""
    chunks = bytearray()
    for chunk in response.iter_raw():
        chunks.extend(chunk)
        if len(chunks) >= MAX_LOGGED_BODY_CHARS:
            break
    return bytes(chunks[:MAX_LOGGED_BODY_CHARS]).decode("utf-8", errors="replace")


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
