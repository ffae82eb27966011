"""Kept outputs: where a job's video sits in the output store, and when retention removed it.

The columns live on ``jobs`` (a job has at most one output); these queries are the only
ones that touch them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from backend.store.jobs import job_written
from backend.store.tables import jobs


@dataclass(frozen=True)
class OutputRecord:
    job_id: str
    key: str
    link_key: str
    content_type: str
    size_bytes: int
    stored_at: datetime
    deleted_at: datetime | None


_COLUMNS = (
    jobs.c.id.label("job_id"),
    jobs.c.output_key.label("key"),
    jobs.c.output_link_key.label("link_key"),
    jobs.c.output_content_type.label("content_type"),
    jobs.c.output_size_bytes.label("size_bytes"),
    jobs.c.output_stored_at.label("stored_at"),
    jobs.c.output_deleted_at.label("deleted_at"),
)


def _record(row: sa.Row) -> OutputRecord:
    return OutputRecord(**row._mapping)


def record_stored(
    conn: sa.Connection,
    job_id: str,
    *,
    key: str,
    link_key: str,
    content_type: str,
    size_bytes: int,
    stored_at: datetime,
) -> None:
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            output_key=key,
            output_link_key=link_key,
            output_content_type=content_type,
            output_size_bytes=size_bytes,
            output_stored_at=stored_at,
            output_deleted_at=None,
        )
    )
    job_written(conn, job_id)


def get_output(conn: sa.Connection, job_id: str) -> OutputRecord | None:
    """The job's kept output (deleted or not), or None if it never had one."""
    row = conn.execute(
        sa.select(*_COLUMNS).where(jobs.c.id == job_id, jobs.c.output_key.is_not(None))
    ).first()
    return _record(row) if row else None


def stored_before(conn: sa.Connection, cutoff: datetime, limit: int) -> list[OutputRecord]:
    """Outputs stored before ``cutoff`` and not deleted yet, oldest first."""
    rows = conn.execute(
        sa.select(*_COLUMNS)
        .where(
            jobs.c.output_stored_at < cutoff,
            jobs.c.output_deleted_at.is_(None),
            jobs.c.output_key.is_not(None),
        )
        .order_by(jobs.c.output_stored_at, jobs.c.id)
        .limit(limit)
    )
    return [_record(row) for row in rows]


def mark_deleted(conn: sa.Connection, job_id: str, at: datetime) -> None:
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id == job_id, jobs.c.output_deleted_at.is_(None))
        .values(output_deleted_at=at)
    )
    job_written(conn, job_id)
