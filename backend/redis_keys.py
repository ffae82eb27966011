"""Every Redis key genhook writes, in one place.

    genhook:job:{job_id}          string  JSON status-cache entry of one job, with its "version"
                                          (updated_at): status_cache.lua keeps the newest
                                          TTL: ACTIVE_JOB_TTL_SECONDS while the job runs,
                                          settings.status_cache_ttl_seconds once it ended
    genhook:lock:job:{job_id}     string  lock held while one worker advances that job
                                          TTL: JOB_LOCK_TTL_SECONDS, renewed while the step
                                          runs (backend/locks.py), so it dies with its worker
    genhook:lock:delivery:{id}    string  lock held while one worker sends that delivery
                                          TTL: DELIVERY_LOCK_TTL_SECONDS, renewed likewise
    genhook:lock:mail:{mail_id}   string  lock held while one worker sends that signup mail
                                          TTL: MAIL_LOCK_TTL_SECONDS, renewed likewise
    genhook:dedup:webhook:{job_id}:{event}:{state}:{url_hash}
                                  string  "{delivery_id}#{attempt}" of the attempt that got a 2xx
                                          TTL: settings.webhook_dedup_ttl_seconds (7 days)
    genhook:slots:account:{account_id}
                                  zset    one member per webhook of the account being sent
                                          now, scored by when the hold expires (ms); at most
                                          settings.webhook_account_concurrency (slots.lua)
                                          TTL: DELIVERY_SLOT_TTL_SECONDS, renewed while sending
    genhook:slots:destination:{account_id}:{host_port_hash}
                                  zset    the same, for the account's webhooks to one
                                          host:port; at most webhook_destination_concurrency
                                          TTL: DELIVERY_SLOT_TTL_SECONDS, renewed likewise
    genhook:slots:destination:{account_id}:{host_port_hash}:freed
                                  list    at most one mark, pushed when a slot is given back,
                                          that a delivery waiting for a slot blocks on
                                          (slots.wait_for_free); TTL 1 s
    genhook:backlog:{destination_hash}
                                  string  set while one batch of a destination's waiting
                                          retries is being brought forward (deliver.py)
                                          TTL: BACKLOG_BATCH_SECONDS
    genhook:probe:destinations    string  set while one recovery pass has probed the
                                          destinations whose retries all wait (sweep.py)
                                          TTL: settings.webhook_probe_interval_seconds
    genhook:lock:sweep:{name}     string  lock held by the scheduler running sweep {name}
                                          ("recovery", or "provider-health": the probe)
                                          TTL: SWEEP_LOCK_TTL_SECONDS, renewed likewise
    genhook:render_time:{model}:{route_key}
                                  hash    moving history of real render seconds of one model
                                          on one route ("kling/kling-v3"): mean, mad, n
                                          (backend/render_history.py, render_history.lua)
                                          TTL: RENDER_HISTORY_TTL_SECONDS, refreshed on write
    genhook:route_health:{route_key}
                                  hash    circuit breaker of one route: consecutive_failures,
                                          cooling_until (epoch s), last_error, last_error_at,
                                          last_success_at (backend/providers/health.py,
                                          route_health.lua)
                                          TTL: ROUTE_HEALTH_TTL_SECONDS (at least the cooldown
                                          plus the window), refreshed on write
    genhook:route_outcomes:{route_key}
                                  zset    the route's recent outcomes, scored by epoch seconds:
                                          "ok|fail:{latency}:{nonce}"; trimmed to the breaker
                                          window and to ROUTE_OUTCOMES_MAX members
                                          TTL: the window plus ROUTE_OUTCOMES_TTL_SLACK_SECONDS
    genhook:ratelimit:{LIMITER/{policy}/{identity}/{amount}/{multiples}/{granularity}}
                                  string  the current window's count of one policy window
                                          (identity: an account id, a client address or an
                                          email domain); the same key + "/-1" holds the
                                          previous window's. Written by the ``limits``
                                          library's sliding-window counter
                                          (backend/ratelimit/limiter.py)
                                          TTL: twice the window
    dramatiq:*                            Dramatiq's own queues (namespace "dramatiq")

The database is the truth; losing these keys loses speed, and (for the dedup keys) only
the protection against a resend after a crash in the instant after a receiver's 2xx.
"""

from __future__ import annotations

PREFIX = "genhook"

#: Prefix of the rate-limit counters (the ``limits`` library adds ``:{key}``).
RATE_LIMIT_PREFIX = f"{PREFIX}:ratelimit"
#: Cache lifetime of a running job; every poll rewrites it, so it only expires if polling stops.
ACTIVE_JOB_TTL_SECONDS = 300
#: A lock outlives a crashed holder by at most this; a live holder renews it every third.
JOB_LOCK_TTL_SECONDS = 10
DELIVERY_LOCK_TTL_SECONDS = 10
#: A delivery's concurrency slots outlive a crashed sender by at most this.
DELIVERY_SLOT_TTL_SECONDS = 10
MAIL_LOCK_TTL_SECONDS = 10
#: A destination back from an outage gets its waiting retries in batches, one batch per
#: this many seconds, spread evenly over it: at most BACKLOG_BATCH_SIZE / this per second.
BACKLOG_BATCH_SECONDS = 2
BACKLOG_BATCH_SIZE = 50
#: A scheduler that died mid-sweep lets another take over after this.
SWEEP_LOCK_TTL_SECONDS = 30
#: A route unused this long forgets its render times and starts again from the catalog's.
RENDER_HISTORY_TTL_SECONDS = 30 * 24 * 3600
#: A route not called this long forgets its breaker state and last error (never less than
#: its cooldown plus window: see ``backend/providers/health.py``).
ROUTE_HEALTH_TTL_SECONDS = 7 * 24 * 3600
#: Most outcomes kept per route, however busy it is; bounds the key and the rate check.
ROUTE_OUTCOMES_MAX = 1000
#: The outcomes key outlives the breaker window by this much, then goes with the traffic.
ROUTE_OUTCOMES_TTL_SLACK_SECONDS = 60


def job_status(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def job_lock(job_id: str) -> str:
    return f"{PREFIX}:lock:job:{job_id}"


def delivery_lock(delivery_id: str) -> str:
    return f"{PREFIX}:lock:delivery:{delivery_id}"


def mail_lock(mail_id: str) -> str:
    return f"{PREFIX}:lock:mail:{mail_id}"


def webhook_dedup(job_id: str, event: str, state: str, destination_hash: str) -> str:
    return f"{PREFIX}:dedup:webhook:{job_id}:{event}:{state}:{destination_hash}"


def account_slots(account_id: str) -> str:
    return f"{PREFIX}:slots:account:{account_id}"


def destination_slots(account_id: str, destination_hash: str) -> str:
    return f"{PREFIX}:slots:destination:{account_id}:{destination_hash}"


def backlog(destination_hash: str) -> str:
    return f"{PREFIX}:backlog:{destination_hash}"


def destination_probe() -> str:
    return f"{PREFIX}:probe:destinations"


def sweep_lock(name: str) -> str:
    return f"{PREFIX}:lock:sweep:{name}"


def render_history(model: str, route_key: str) -> str:
    return f"{PREFIX}:render_time:{model}:{route_key}"


def route_health(route_key: str) -> str:
    return f"{PREFIX}:route_health:{route_key}"


def route_outcomes(route_key: str) -> str:
    return f"{PREFIX}:route_outcomes:{route_key}"
