"""Which Dramatiq queues each worker pool serves, with how many processes and threads.

Job steps (submit, poll) and webhook deliveries run on separate pools: a delivery waits on
a receiver chosen by a tenant, for up to the webhook timeout, and must never hold a thread
a job needs (issue 11, finding 2). ``genhook up`` runs one worker per pool;
in production run ``genhook worker --queues jobs`` and ``genhook worker --queues
webhooks`` (``genhook worker`` alone serves every queue from one pool, which the
delivery caps of ``backend/webhooks/fairness.py`` still keep fair, but where a slow
receiver still takes threads jobs could use).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend.queue import JOBS_QUEUE, WEBHOOKS_QUEUE
from backend.settings import Settings

#: Every queue a worker can serve, in the order ``--queues`` lists them.
QUEUES = (JOBS_QUEUE, WEBHOOKS_QUEUE)


@dataclass(frozen=True)
class Pool:
    """``queues`` empty: every queue."""

    name: str
    queues: tuple[str, ...]
    processes: int
    threads: int


def pools(settings: Settings) -> list[Pool]:
    """The pools a full deployment runs, one worker each (``genhook up`` does)."""
    return [pool_for(settings, [JOBS_QUEUE]), pool_for(settings, [WEBHOOKS_QUEUE])]


def pool_for(settings: Settings, queues: Sequence[str] | None = None) -> Pool:
    """The pool of a worker serving ``queues`` (none: all). Only deliveries: the delivery
    pool's settings; anything with the jobs queue: the job worker's."""
    chosen = tuple(q for q in QUEUES if q in set(queues or QUEUES))
    unknown = set(queues or ()) - set(QUEUES)
    if unknown:
        raise ValueError(f"unknown queue(s) {sorted(unknown)}; known: {', '.join(QUEUES)}")
    if chosen == (WEBHOOKS_QUEUE,):
        return Pool(
            WEBHOOKS_QUEUE,
            chosen,
            settings.webhook_worker_processes,
            settings.webhook_worker_threads,
        )
    name = JOBS_QUEUE if chosen == (JOBS_QUEUE,) else "all"
    return Pool(
        name, () if chosen == QUEUES else chosen, settings.worker_processes, settings.worker_threads
    )
