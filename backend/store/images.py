"""Input images (first and last frames) that genhook fetched, checked and keeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from backend.store.tables import images
from backend.store.types import record_from_row, utcnow


@dataclass(frozen=True)
class ImageRecord:
    id: str
    account_id: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    data: bytes
    link_key: str
    created_at: datetime


def insert_image(
    conn: sa.Connection,
    *,
    image_id: str,
    account_id: str,
    content_type: str,
    width: int,
    height: int,
    sha256: str,
    data: bytes,
    link_key: str,
) -> None:
    conn.execute(
        images.insert().values(
            id=image_id,
            account_id=account_id,
            content_type=content_type,
            width=width,
            height=height,
            size_bytes=len(data),
            sha256=sha256,
            data=data,
            link_key=link_key,
            created_at=utcnow(),
        )
    )


def get_image(conn: sa.Connection, image_id: str) -> ImageRecord | None:
    row = conn.execute(sa.select(images).where(images.c.id == image_id)).first()
    return record_from_row(ImageRecord, row, data=bytes(row.data)) if row else None
