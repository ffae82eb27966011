"""Signed, expiring links to an input image, for providers that fetch images by URL.

Each image row carries its own random ``link_key``, so a link is an HMAC of the image id
and the expiry under that key: nothing server-wide to configure or leak, and a link cannot
be stretched or pointed at another image.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from backend.store import Store
from backend.store.images import ImageRecord, get_image

#: The API route that serves linked images.
LINK_PATH = "/v1/image-inputs/{image_id}"


def new_link_key() -> str:
    return secrets.token_hex(32)


def signature(image_id: str, link_key: str, expires: int) -> str:
    message = f"{image_id}.{expires}".encode()
    return hmac.new(link_key.encode(), message, hashlib.sha256).hexdigest()


def signed_link(public_base_url: str, image: ImageRecord, now: datetime, ttl_seconds: int) -> str:
    expires = int(now.timestamp()) + ttl_seconds
    path = LINK_PATH.format(image_id=image.id)
    sig = signature(image.id, image.link_key, expires)
    return f"{public_base_url.rstrip('/')}{path}?expires={expires}&signature={sig}"


def link_is_valid(image: ImageRecord, expires: int, given: str, now: datetime) -> bool:
    """Constant-time check of the signature, then of the expiry."""
    expected = signature(image.id, image.link_key, expires)
    # As bytes: compare_digest refuses non-ASCII str, and a forged link may carry any text.
    matches = hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
    return matches and expires > now.timestamp()


def open_link(
    store: Store, image_id: str, expires: int, given: str, now: datetime
) -> ImageRecord | None:
    """The image if the link is genuine and unexpired, else None."""
    with store.begin() as conn:
        image = get_image(conn, image_id)
    if image is None or not link_is_valid(image, expires, given, now):
        return None
    return image
