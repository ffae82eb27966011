"""Every task genhook ever asked a provider for, one row each: what it cost, how it ended,
and which were abandoned (so an orphan can be cancelled and accounted for)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa

from backend.store.tables import provider_tasks
from backend.store.types import record_from_row, utcnow


class TaskState(StrEnum):
    #: The create call is being made; no answer yet.
    SUBMITTING = "submitting"
    #: The create call got no answer: a task may or may not exist.
    UNKNOWN = "unknown"
    #: The provider refused to create it; nothing to pay.
    REFUSED = "refused"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    #: genhook stopped caring about it (the job ended another way) while it may still run.
    ABANDONED = "abandoned"

    @property
    def is_open(self) -> bool:
        return self in (TaskState.SUBMITTING, TaskState.UNKNOWN, TaskState.RUNNING)


@dataclass(frozen=True)
class ProviderTaskRecord:
    id: int
    job_id: str
    provider: str
    provider_model: str
    task_id: str | None
    state: TaskState
    callback_token_hash: str | None
    error: str | None
    cost: float | None
    route_index: int | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


def _record(row: sa.Row) -> ProviderTaskRecord:
    return record_from_row(ProviderTaskRecord, row, state=TaskState(row._mapping["state"]))


def start_task(
    conn: sa.Connection,
    *,
    job_id: str,
    provider: str,
    provider_model: str,
    callback_token_hash: str | None,
    route_index: int | None = None,
) -> int:
    """Record a create call about to be made, before it is made."""
    now = utcnow()
    result = conn.execute(
        provider_tasks.insert().values(
            job_id=job_id,
            provider=provider,
            provider_model=provider_model,
            state=TaskState.SUBMITTING.value,
            callback_token_hash=callback_token_hash,
            route_index=route_index,
            created_at=now,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_task(
    conn: sa.Connection,
    row_id: int,
    state: TaskState,
    *,
    task_id: str | None = None,
    error: str | None = None,
) -> None:
    values: dict[str, object] = {"state": state.value, "updated_at": utcnow()}
    if task_id is not None:
        values["task_id"] = task_id
    if error is not None:
        values["error"] = error[:2000]
    if not state.is_open:
        values["ended_at"] = utcnow()
    conn.execute(provider_tasks.update().where(provider_tasks.c.id == row_id).values(**values))


# Built once (SQLAlchemy reuses their cache keys and compiled forms): every job ends its
# tasks once when it renders and again when it finishes.
_OPEN_TASKS_OF_JOB = provider_tasks.update().where(
    provider_tasks.c.job_id == sa.bindparam("job_id_"),
    provider_tasks.c.state.in_([s.value for s in TaskState if s.is_open]),
)
_END_TASK = _OPEN_TASKS_OF_JOB.where(provider_tasks.c.task_id == sa.bindparam("task_id_"))


def end_job_tasks(
    conn: sa.Connection,
    job_id: str,
    state: TaskState,
    task_id: str | None,
    cost: float | None = None,
) -> None:
    """The job's current task ended as ``state`` (costing ``cost``, where the provider
    said); any other task of the job still open is abandoned."""
    now = utcnow()
    ended = {"job_id_": job_id, "updated_at": now, "ended_at": now}
    if task_id is not None:
        conn.execute(_END_TASK, {**ended, "task_id_": task_id, "state": state.value, "cost": cost})
    conn.execute(_OPEN_TASKS_OF_JOB, {**ended, "state": TaskState.ABANDONED.value})


def get_by_callback_token_hash(conn: sa.Connection, token_hash: str) -> ProviderTaskRecord | None:
    row = conn.execute(
        sa.select(provider_tasks).where(provider_tasks.c.callback_token_hash == token_hash)
    ).first()
    return _record(row) if row else None


def tasks_of_job(conn: sa.Connection, job_id: str) -> list[ProviderTaskRecord]:
    rows = conn.execute(
        sa.select(provider_tasks)
        .where(provider_tasks.c.job_id == job_id)
        .order_by(provider_tasks.c.id)
    )
    return [_record(r) for r in rows]
