"""Every Redis key genhook writes, in one place.

    genhook:job:{job_id}          string  JSON status-cache entry of one job
                                          TTL: ACTIVE_JOB_TTL_SECONDS while the job runs,
                                          settings.status_cache_ttl_seconds once it ended
    genhook:lock:job:{job_id}     string  lock held while one worker advances that job
                                          TTL: JOB_LOCK_TTL_SECONDS (expires if a worker dies)
    genhook:lock:delivery:{id}    string  lock held while one worker sends that delivery
                                          TTL: DELIVERY_LOCK_TTL_SECONDS
    genhook:dedup:webhook:{job_id}:{event}:{state}:{url_hash}
                                  string  "{delivery_id}#{attempt}" of the attempt that got a 2xx
                                          TTL: settings.webhook_dedup_ttl_seconds (7 days)
    genhook:lock:sweep:{name}     string  lock held by the scheduler running sweep {name}
                                          TTL: SWEEP_LOCK_TTL_SECONDS
    dramatiq:*                            Dramatiq's own queues (namespace "dramatiq")

The database is the truth; losing these keys loses speed, and (for the dedup keys) only
the protection against a resend after a crash in the instant after a receiver's 2xx.
"""

from __future__ import annotations

PREFIX = "genhook"

#: Cache lifetime of a running job; every poll rewrites it, so it only expires if polling stops.
ACTIVE_JOB_TTL_SECONDS = 300
#: A job lock outlives no crashed worker by more than this.
JOB_LOCK_TTL_SECONDS = 60
#: Longer than one webhook attempt can take (its timeout plus bookkeeping).
DELIVERY_LOCK_TTL_SECONDS = 120
#: A sweep that runs longer than this may be taken over by another scheduler.
SWEEP_LOCK_TTL_SECONDS = 240


def job_status(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def job_lock(job_id: str) -> str:
    return f"{PREFIX}:lock:job:{job_id}"


def delivery_lock(delivery_id: str) -> str:
    return f"{PREFIX}:lock:delivery:{delivery_id}"


def webhook_dedup(job_id: str, event: str, state: str, destination_hash: str) -> str:
    return f"{PREFIX}:dedup:webhook:{job_id}:{event}:{state}:{destination_hash}"


def sweep_lock(name: str) -> str:
    return f"{PREFIX}:lock:sweep:{name}"
