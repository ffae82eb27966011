"""A job's states and phases, and the one rule that says which transitions are legal.

       ┌──failover (mid-render)──┐
       ▼                         │
    pending ──submit──▶ processing ──▶ completed
       │ ▲                  │
       └─┴─failover         ├───────▶ failed     (refunded once)
       │                    │
       └────────────────────┴───────▶ canceled   (refunded once)

``status`` is the coarse, client-facing state; ``phase`` tells where the render is.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"  # accepted and paid, not yet with a provider
    PROCESSING = "processing"  # submitted to a provider, rendering
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"  # stopped by its owner

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})


class JobPhase(StrEnum):
    QUEUED = "queued"
    PREPARING = "preparing"
    RENDERING = "rendering"
    ENCODING = "encoding"
    FINISHING = "finishing"

    @property
    def label(self) -> str:
        return self.value.capitalize()


#: Phases in the order a render goes through them; a job never moves backwards.
PHASE_ORDER = list(JobPhase)

#: status -> statuses it may move to. A repeated status (processing -> processing)
#: is how phase changes are recorded.
#: Back to pending is a failover: the job waits for submission on its next route.
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset(
        {JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.PROCESSING: frozenset(
        {
            JobStatus.PENDING,
            JobStatus.PROCESSING,
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELED,
        }
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


def sources_of(target: JobStatus) -> list[JobStatus]:
    """Every status from which ``target`` may be reached."""
    return [src for src, targets in ALLOWED_TRANSITIONS.items() if target in targets]


def later_phase(current: JobPhase, reported: JobPhase) -> JobPhase:
    """The further along of two phases, so a stale provider answer never rewinds a job."""
    return max(current, reported, key=PHASE_ORDER.index)
