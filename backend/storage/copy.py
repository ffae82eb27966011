"""Copy a provider's finished video into genhook's output store, streaming.

The body goes from the provider's socket to the store chunk by chunk, checked on the way:
a 2xx answer, a declared and an actual size within the limit, and a video content type
(a generic ``octet-stream`` only when the first bytes are MP4 or WebM). Any failure raises
``OutputCopyFailed`` saying whether trying again could help, and leaves no object behind.
Redirects are followed only if ``client`` follows them; genhook passes its SSRF-guarded
client (``backend/webhooks/guarded_transport.py``), which does not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import httpx

from backend.errors import OutputCopyFailed, StorageUnavailable, UnsafeWebhookTarget
from backend.storage import OutputStore, StoredObject

#: Size of the chunks read from the provider.
CHUNK_BYTES = 64 * 1024
#: Bytes needed to recognise MP4 (``ftyp`` at offset 4) or WebM (the EBML magic).
SNIFF_BYTES = 12
GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", ""})
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
#: Statuses worth retrying besides 5xx: request timeout and rate limit.
RETRYABLE_STATUSES = frozenset({408, 429})


#: Redirects followed to reach the file (a CDN, then a signed storage URL).
MAX_REDIRECTS = 5


def copy_output(
    client: httpx.Client,
    url: str,
    store: OutputStore,
    key: str,
    *,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> StoredObject:
    """GET ``url`` and store its body under ``key``; raises ``OutputCopyFailed``.

    Redirects (a CDN, a signed storage URL) are followed up to ``MAX_REDIRECTS`` times over
    the same guarded client, so every hop's address is vetted; ``headers`` (a provider's
    credentials) go to the first host only."""
    try:
        return _copy(client, url, store, key, max_bytes, dict(headers or {}))
    except httpx.HTTPError as exc:
        raise OutputCopyFailed(
            f"fetching the output failed: {exc or type(exc).__name__}", retryable=True
        ) from exc
    except UnsafeWebhookTarget as exc:
        raise OutputCopyFailed(f"the output URL is not allowed: {exc}", retryable=False) from exc
    except StorageUnavailable as exc:
        raise OutputCopyFailed(f"the output store failed: {exc}", retryable=True) from exc


def _copy(
    client: httpx.Client,
    url: str,
    store: OutputStore,
    key: str,
    max_bytes: int,
    headers: dict[str, str],
) -> StoredObject:
    origin = httpx.URL(url).netloc
    for _ in range(MAX_REDIRECTS + 1):
        with client.stream("GET", url, headers=headers) as response:
            if response.is_redirect and "location" in response.headers:
                url = str(response.url.join(response.headers["location"]))
                if httpx.URL(url).scheme not in ("http", "https"):
                    raise OutputCopyFailed(
                        "the output redirects to a non-http URL", retryable=False
                    )
                if httpx.URL(url).netloc != origin:
                    headers = {}
                continue
            _check_answer(response, max_bytes)
            chunks = response.iter_bytes(CHUNK_BYTES)
            head = _read_head(chunks)
            content_type = _checked_type(response.headers.get("content-type", ""), head)
            body = _limited(head, chunks, max_bytes)
            return store.put_stream(key, body, content_type)
    raise OutputCopyFailed(f"more than {MAX_REDIRECTS} redirects", retryable=False)


def _check_answer(response: httpx.Response, max_bytes: int) -> None:
    status = response.status_code
    if not response.is_success:
        retryable = status >= 500 or status in RETRYABLE_STATUSES
        location = response.headers.get("location")
        where = f" (a redirect to {location}, not followed)" if location else ""
        raise OutputCopyFailed(
            f"fetching the output answered HTTP {status}{where}", retryable=retryable
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise OutputCopyFailed(
            f"the output is {declared} bytes, more than the {max_bytes} allowed", retryable=False
        )


def _read_head(chunks: Iterator[bytes]) -> bytes:
    """The first bytes of the body (at least ``SNIFF_BYTES`` unless it is shorter)."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    return head


def _checked_type(header: str, head: bytes) -> str:
    """The type to store: a declared ``video/*``, or one sniffed from a generic type."""
    media_type = header.split(";", 1)[0].strip().lower()
    if not head:
        raise OutputCopyFailed("the output is empty", retryable=False)
    if media_type.startswith("video/"):
        return media_type
    if media_type in GENERIC_TYPES:
        if head[4:8] == b"ftyp":
            return "video/mp4"
        if head.startswith(EBML_MAGIC):
            return "video/webm"
        raise OutputCopyFailed(
            f"the output ({media_type or 'no content type'}) is neither MP4 nor WebM",
            retryable=False,
        )
    raise OutputCopyFailed(f"the output is {media_type}, not a video", retryable=False)


def _limited(head: bytes, chunks: Iterator[bytes], max_bytes: int) -> Iterator[bytes]:
    """The whole body, failing as soon as it grows past ``max_bytes``."""
    size = 0
    for chunk in _chain(head, chunks):
        size += len(chunk)
        if size > max_bytes:
            raise OutputCopyFailed(
                f"the output is larger than the {max_bytes} bytes allowed", retryable=False
            )
        yield chunk


def _chain(head: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from chunks
