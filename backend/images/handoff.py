"""The images of a job as an adapter receives them: bytes, plus a signed link when
providers can reach genhook (``GENHOOK_PUBLIC_BASE_URL``)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from backend.images.links import signed_link
from backend.providers.base import ImageInput
from backend.settings import Settings
from backend.store import images as images_store
from backend.store.images import ImageRecord
from backend.store.jobs import JobRecord


def image_inputs(
    settings: Settings, conn: sa.Connection, job: JobRecord, now: datetime
) -> tuple[ImageInput | None, ImageInput | None]:
    """The job's first and last frame, each None when it has none."""
    return (
        _input(settings, conn, job.image_id, now),
        _input(settings, conn, job.end_image_id, now),
    )


def _input(
    settings: Settings, conn: sa.Connection, image_id: str | None, now: datetime
) -> ImageInput | None:
    if image_id is None:
        return None
    image = images_store.get_image(conn, image_id)
    if image is None:
        raise LookupError(f"image {image_id} of a job is missing")
    return ImageInput(
        data=image.data,
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        url=_link(settings, image, now),
    )


def _link(settings: Settings, image: ImageRecord, now: datetime) -> str | None:
    if not settings.public_base_url:
        return None
    return signed_link(settings.public_base_url, image, now, settings.image_link_ttl_seconds)
