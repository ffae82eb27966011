"""Jobs: insert, read, list, and the one guarded transition function every state change uses."""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from backend.jobs.states import ALLOWED_TRANSITIONS, JobPhase, JobStatus, later_phase
from backend.store import JOB_WRITE_HOOK
from backend.store.tables import accounts, jobs
from backend.store.types import record_from_row, utcnow


@dataclass(frozen=True)
class JobRecord:
    id: str
    account_id: str
    model: str
    prompt: str
    duration_seconds: int
    aspect_ratio: str
    webhook_url: str | None
    metadata: dict[str, str]
    status: JobStatus
    phase: JobPhase
    provider: str
    provider_job_id: str | None
    provider_model: str | None
    image_id: str | None
    end_image_id: str | None
    progress: float | None
    queue_position: int | None
    credits_charged: int
    refunded_at: datetime | None
    failover_used: bool
    output_url: str | None
    error: dict[str, Any] | None
    status_chain: list[dict[str, Any]]
    eta_seconds: float | None
    poll_token: str | None
    poll_failures: int
    next_poll_at: datetime | None
    last_polled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    completed_at: datetime | None
    route_plan: list[dict[str, Any]] | None
    route_index: int
    deadline_at: datetime | None
    rendered_model: str | None
    credits_billed: int | None
    provider_output_url: str | None
    output_key: str | None
    output_link_key: str | None
    output_content_type: str | None
    output_size_bytes: int | None
    output_stored_at: datetime | None
    output_deleted_at: datetime | None


def _record(row: sa.Row) -> JobRecord:
    m = row._mapping
    return record_from_row(
        JobRecord, row, status=JobStatus(m["status"]), phase=JobPhase(m["phase"])
    )


def chain_entry(status: JobStatus, phase: JobPhase, at: datetime) -> dict[str, Any]:
    """One link of a job's status chain, as stored and as shown to clients."""
    return {"status": status.value, "phase": phase.value, "at": at.isoformat()}


# The statements every step of a job runs, built once: SQLAlchemy then reuses their cache
# keys and compiled forms instead of building and hashing a new statement on every call
# (measured: most of the worker's CPU per job, and more than the rest of a submission's
# SQL, went to building ``.values(...)`` for thirty columns).
_BY_ID: sa.BindParameter[str] = sa.bindparam("job_id_")
_GET_JOB = sa.select(jobs).where(jobs.c.id == _BY_ID)
_GET_JOB_FOR_UPDATE = _GET_JOB.with_for_update()
#: The columns to set are given with the parameters at execution.
_UPDATE_JOB = jobs.update().where(jobs.c.id == _BY_ID)
_INSERT_JOB = jobs.insert().returning(*jobs.c)
_COUNT_IN_FLIGHT = (
    accounts.update()
    .where(accounts.c.id == sa.bindparam("_id"))
    .values(jobs_in_flight=accounts.c.jobs_in_flight + sa.bindparam("_change"))
)


def insert_job(
    conn: sa.Connection,
    *,
    job_id: str,
    account_id: str,
    model: str,
    prompt: str,
    duration_seconds: int,
    aspect_ratio: str,
    webhook_url: str | None,
    metadata: dict[str, str],
    provider: str,
    provider_model: str,
    credits_charged: int,
    image_id: str | None = None,
    end_image_id: str | None = None,
    route_plan: list[dict[str, Any]] | None = None,
    rendered_model: str | None = None,
    deadline_at: datetime | None = None,
    eta_seconds: float | None = None,
) -> JobRecord:
    now = utcnow()
    values = dict(
        id=job_id,
        account_id=account_id,
        model=model,
        prompt=prompt,
        duration_seconds=duration_seconds,
        aspect_ratio=aspect_ratio,
        webhook_url=webhook_url,
        metadata=metadata,
        status=JobStatus.PENDING.value,
        phase=JobPhase.QUEUED.value,
        provider=provider,
        provider_model=provider_model,
        image_id=image_id,
        end_image_id=end_image_id,
        credits_charged=credits_charged,
        credits_billed=credits_charged,
        failover_used=False,
        route_plan=route_plan,
        route_index=0,
        rendered_model=rendered_model or model,
        deadline_at=deadline_at,
        eta_seconds=eta_seconds,
        status_chain=[chain_entry(JobStatus.PENDING, JobPhase.QUEUED, now)],
        poll_failures=0,
        created_at=now,
        updated_at=now,
    )
    row = conn.execute(_INSERT_JOB, values).one()
    _count_in_flight(conn, account_id, +1)
    return _record(row)


def _count_in_flight(conn: sa.Connection, account_id: str, change: int) -> None:
    """Keep ``accounts.jobs_in_flight`` in step with the account's unfinished jobs, in the
    transaction that inserts or finishes one (the row stays locked until it commits)."""
    conn.execute(_COUNT_IN_FLIGHT, {"_id": account_id, "_change": change})


def get_job(conn: sa.Connection, job_id: str, *, for_update: bool = False) -> JobRecord | None:
    query = _GET_JOB_FOR_UPDATE if for_update else _GET_JOB
    row = conn.execute(query, {"job_id_": job_id}).first()
    return _record(row) if row else None


def get_account_job(conn: sa.Connection, account_id: str, job_id: str) -> JobRecord | None:
    row = conn.execute(
        sa.select(jobs).where(jobs.c.id == job_id, jobs.c.account_id == account_id)
    ).first()
    return _record(row) if row else None


def encode_cursor(job: JobRecord) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`; raises ``ValueError`` on anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        when = datetime.fromisoformat(created_at)
    except Exception as exc:  # any malformed cursor is the client's mistake
        raise ValueError("not a cursor returned by this API") from exc
    # Ids are short printable ASCII: anything else (a NUL PostgreSQL cannot compare, a
    # megabyte of text) was made up by hand.
    if when.tzinfo is None or not isinstance(job_id, str) or not _looks_like_an_id(job_id):
        raise ValueError("not a cursor returned by this API")
    return when, job_id


def _looks_like_an_id(value: str) -> bool:
    return 0 < len(value) <= 64 and value.isascii() and value.isprintable()


def list_jobs(
    conn: sa.Connection,
    account_id: str,
    *,
    limit: int,
    status: JobStatus | None = None,
    before: tuple[datetime, str] | None = None,
) -> list[JobRecord]:
    """Newest first; ``before`` is the (created_at, id) of the last job of the previous page."""
    query = sa.select(jobs).where(jobs.c.account_id == account_id)
    if status is not None:
        query = query.where(jobs.c.status == status.value)
    if before is not None:
        created_at, job_id = before
        query = query.where(
            sa.or_(
                jobs.c.created_at < created_at,
                sa.and_(jobs.c.created_at == created_at, jobs.c.id < job_id),
            )
        )
    query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
    return [_record(row) for row in conn.execute(query)]


def transition(
    conn: sa.Connection,
    job_id: str,
    to: JobStatus,
    *,
    phase: JobPhase | None = None,
    restart_phase: bool = False,
    note: dict[str, Any] | None = None,
    **changes: Any,
) -> JobRecord | None:
    """Move a job to ``to`` (and ``phase``) if the state machine allows it from where it is.

    Returns the updated job, or ``None`` when the move is not allowed (the job already moved
    on, e.g. a duplicate message): callers treat ``None`` as "someone else did this".
    A status or phase change is appended to the job's status chain, with ``note`` (what
    happened: a failover, its route and reason); a note is recorded even without a change.
    The phase never moves backwards, except with ``restart_phase``: a failover starts the
    render again on another route.
    """
    job = get_job(conn, job_id, for_update=True)
    if job is None or to not in ALLOWED_TRANSITIONS[job.status]:
        return None
    now = utcnow()
    if restart_phase and phase is not None:
        new_phase = phase
    else:
        new_phase = later_phase(job.phase, phase) if phase is not None else job.phase
    chain = list(job.status_chain)
    if to != job.status or new_phase != job.phase or note:
        chain.append({**chain_entry(to, new_phase, now), **(note or {})})
    values = {
        "status": to.value,
        "phase": new_phase.value,
        "status_chain": chain,
        "updated_at": now,
        **changes,
    }
    if to.is_terminal:
        values.setdefault("completed_at", now)
    conn.execute(_UPDATE_JOB, {**values, "job_id_": job_id})
    if to.is_terminal and not job.status.is_terminal:
        _count_in_flight(conn, job.account_id, -1)
    job_written(conn, job_id)
    return _updated(job, values)


#: The columns a ``JobRecord`` holds.
_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(JobRecord))


def _updated(job: JobRecord, values: dict[str, Any]) -> JobRecord:
    """The row as the UPDATE just wrote it, without reading it back: the row is locked
    (so nobody else changed it), and every value written is a plain Python value of the
    column's type."""
    fields = {k: v for k, v in values.items() if k in _RECORD_FIELDS}
    fields["status"] = JobStatus(fields["status"])
    fields["phase"] = JobPhase(fields["phase"])
    return dataclasses.replace(job, **fields)


def update_job(conn: sa.Connection, job_id: str, **changes: Any) -> None:
    """Bookkeeping that is not a state change (poll times, tokens, failure counters)."""
    conn.execute(_UPDATE_JOB, {**changes, "job_id_": job_id})
    job_written(conn, job_id)


def job_written(conn: sa.Connection, job_id: str) -> None:
    """Tell the store's listener (the status cache) that this job's row changed; called
    after the UPDATE, so the row stays locked until the commit and two writers' calls come
    in the order of their commits."""
    hook = conn.info.get(JOB_WRITE_HOOK)
    if hook is not None:
        hook(job_id)


def mark_refunded(conn: sa.Connection, job_id: str) -> bool:
    """Set ``refunded_at`` once; ``False`` if the job was already refunded."""
    result = conn.execute(
        jobs.update()
        .where(jobs.c.id == job_id, jobs.c.refunded_at.is_(None))
        .values(refunded_at=utcnow())
    )
    return result.rowcount == 1


def stalled_pending(conn: sa.Connection, older_than: datetime, limit: int = 500) -> list[str]:
    """Jobs still waiting for submission long after they were last touched."""
    rows = conn.execute(
        sa.select(jobs.c.id)
        .where(jobs.c.status == JobStatus.PENDING.value, jobs.c.updated_at < older_than)
        .limit(limit)
    )
    return [r.id for r in rows]


def stalled_polls(conn: sa.Connection, overdue_since: datetime, limit: int = 500) -> list[str]:
    """Processing jobs whose next poll is long overdue: the poll message was lost.

    Two range reads of ``ix_jobs_status_next_poll`` rather than one ``OR``, which both
    SQLite and PostgreSQL answered by reading every processing job (4.5-7 ms every 5 s
    with 10,000 in flight)."""
    processing = jobs.c.status == JobStatus.PROCESSING.value
    found: list[str] = []
    for when in (jobs.c.next_poll_at.is_(None), jobs.c.next_poll_at < overdue_since):
        if len(found) >= limit:
            break
        query = sa.select(jobs.c.id).where(processing, when).limit(limit - len(found))
        found.extend(r.id for r in conn.execute(query))
    return found


def overdue_jobs(
    conn: sa.Connection, now: datetime, default_created_before: datetime, limit: int = 500
) -> list[str]:
    """Unfinished, unrendered jobs past their deadline (their model's maximum wait); jobs
    from before deadlines were recorded use the server's default maximum wait."""
    rows = conn.execute(
        sa.select(jobs.c.id)
        .where(
            jobs.c.status.in_([JobStatus.PENDING.value, JobStatus.PROCESSING.value]),
            # A rendered job (its output being kept) is past waiting for its provider.
            jobs.c.provider_output_url.is_(None),
            sa.or_(
                jobs.c.deadline_at < now,
                sa.and_(jobs.c.deadline_at.is_(None), jobs.c.created_at < default_created_before),
            ),
        )
        .limit(limit)
    )
    return [r.id for r in rows]
