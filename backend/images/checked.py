"""Turn a client's ``image_url`` (http(s) or ``data:``) into checked image bytes.

genhook fetches the image itself, under the same SSRF rules as webhooks, so a provider never
gets a URL it cannot reach or a file it will refuse minutes later: the size, the content
type and the real pixel dimensions (decoded by Pillow, not trusted from headers) are
checked here, and every problem is a 422 naming the field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from backend.errors import UnsafeWebhookTarget, ValidationFailed
from backend.settings import Settings
from backend.webhooks import url_guard
from backend.webhooks.guarded_transport import total_time_limit
from backend.webhooks.name_lookup import Lookup
from backend.webhooks.url_guard import IPNetwork

#: Formats every provider takes (Kling: jpg/png; Runway, Luma, fal, Veo: also webp).
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
#: Kling's limits are the strictest of the providers': at least 300 px a side, an aspect
#: ratio between 1:2.5 and 2.5:1.
MIN_SIDE_PIXELS = 300
MAX_SIDE_PIXELS = 8192
MAX_ASPECT_RATIO = 2.5
FETCH_TIMEOUT_SECONDS = 10.0
MAX_REDIRECTS = 3


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    content_type: str
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def check_image_source(
    source: str,
    *,
    field: str,
    settings: Settings,
    allowed: Sequence[IPNetwork],
    client: httpx.Client,
    lookup: Lookup | None = None,
) -> CheckedImage:
    """Fetch or decode ``source`` and check it; raises ``ValidationFailed`` naming ``field``.

    ``allowed`` are the non-public networks the account may reach, and ``client`` the
    guarded client that connects only there (``backend/webhooks/targets.py``); ``Unavailable``
    naming ``field`` when its host name does not resolve in time."""
    if source.startswith("data:"):
        data = _decode_data_url(source, field, settings.image_max_bytes)
    else:
        data = _fetch(source, field, settings, allowed, client, lookup)
    return _inspect(data, field)


def _decode_data_url(source: str, field: str, max_bytes: int) -> bytes:
    header, comma, payload = source.partition(",")
    if not comma or not header.endswith(";base64"):
        raise ValidationFailed.for_field(
            field, "a data: URL must be base64 (data:image/png;base64,…)"
        )
    if len(payload) > (max_bytes * 4) // 3 + 4:
        raise ValidationFailed.for_field(field, f"the image is larger than {max_bytes} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed.for_field(field, "the data: URL is not valid base64") from None


def _fetch(
    url: str,
    field: str,
    settings: Settings,
    allowed: Sequence[IPNetwork],
    client: httpx.Client,
    lookup: Lookup | None,
) -> bytes:
    """GET the image over the guarded client, following a few redirects, each one vetted,
    all within one overall time limit (a server trickling bytes cannot hold the API)."""
    with total_time_limit(FETCH_TIMEOUT_SECONDS):
        return _fetch_within_limit(url, field, settings, allowed, client, lookup)


def _fetch_within_limit(
    url: str,
    field: str,
    settings: Settings,
    allowed: Sequence[IPNetwork],
    client: httpx.Client,
    lookup: Lookup | None,
) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        url_guard.require_public(
            url, allowed, field, timeout=settings.dns_timeout_seconds, lookup=lookup
        )
        try:
            with client.stream("GET", url, timeout=FETCH_TIMEOUT_SECONDS) as response:
                if response.is_redirect and "location" in response.headers:
                    url = str(response.url.join(response.headers["location"]))
                    if urlsplit(url).scheme not in ("http", "https"):
                        raise ValidationFailed.for_field(field, "redirects to a non-http URL")
                    continue
                if not response.is_success:
                    raise ValidationFailed.for_field(
                        field, f"fetching the image answered HTTP {response.status_code}"
                    )
                return _read_limited(response, field, settings.image_max_bytes)
        except UnsafeWebhookTarget as exc:
            raise ValidationFailed.for_field(field, str(exc)) from None
        except httpx.HTTPError as exc:
            raise ValidationFailed.for_field(
                field, f"the image could not be fetched: {exc or type(exc).__name__}"
            ) from None
    raise ValidationFailed.for_field(field, f"more than {MAX_REDIRECTS} redirects")


def _read_limited(response: httpx.Response, field: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ValidationFailed.for_field(field, f"the image is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ValidationFailed.for_field(field, f"the image is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _inspect(data: bytes, field: str) -> CheckedImage:
    if not data:
        raise ValidationFailed.for_field(field, "the image is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format or ""
            width, height = image.size
            image.verify()  # reads the whole file: a truncated or corrupt one fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise ValidationFailed.for_field(field, "is not a readable image") from None
    content_type = CONTENT_TYPES.get(image_format)
    if content_type is None:
        raise ValidationFailed.for_field(
            field, f"must be a JPEG, PNG or WebP image, not {image_format or 'unknown'}"
        )
    if min(width, height) < MIN_SIDE_PIXELS:
        raise ValidationFailed.for_field(
            field, f"is {width}x{height}; each side must be at least {MIN_SIDE_PIXELS} px"
        )
    if max(width, height) > MAX_SIDE_PIXELS:
        raise ValidationFailed.for_field(
            field, f"is {width}x{height}; each side must be at most {MAX_SIDE_PIXELS} px"
        )
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ValidationFailed.for_field(
            field, f"is {width}x{height}; the aspect ratio must be between 1:2.5 and 2.5:1"
        )
    return CheckedImage(data=data, content_type=content_type, width=width, height=height)
