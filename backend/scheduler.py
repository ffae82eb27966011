"""The recovery passes and the provider health probe (APScheduler), one run at a time
across every scheduler.

Several schedulers may run (one per host, say); a Redis lock makes sure each pass runs once
per period. The passes themselves are in ``backend/jobs/sweep.py``, the probe in
``backend/providers/probe.py``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis
from apscheduler.schedulers.blocking import BlockingScheduler

from backend import redis_keys
from backend.context import Context
from backend.jobs.sweep import recover_overdue, run_sweeps
from backend.locks import held
from backend.providers.probe import probe_routes

log = logging.getLogger(__name__)

#: Holds the run id of the Redis server the last fast pass saw: missing (flushed, or a
#: restart without persistence) or different (a restart) means messages were lost.
REDIS_SENTINEL = f"{redis_keys.PREFIX}:recovery:redis_run_id"


class OverdueRecovery:
    """The fast recovery pass, run at start and then every ``recovery_interval_seconds``.

    When Redis was flushed or restarted (or could not be reached), every message it held
    may be gone: that pass takes everything due, with no grace."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.redis_was_down = False

    def __call__(self) -> None:
        ctx = self.ctx
        try:
            lost = redis_lost_messages(ctx) or self.redis_was_down
        except redis.RedisError as exc:
            log.warning("recovery pass skipped, Redis unreachable: %s", exc)
            self.redis_was_down = True
            return
        self.redis_was_down = False
        if lost:
            log.warning(
                "Redis lost its messages (flushed, restarted or unreachable): "
                "recovering everything due now"
            )
        recover_now(ctx, grace_seconds=0 if lost else None)


def recover_now(ctx: Context, *, grace_seconds: float | None = None) -> None:
    """One fast pass, unless another process is running one right now."""
    with held(
        ctx.redis, redis_keys.sweep_lock("overdue"), redis_keys.SWEEP_LOCK_TTL_SECONDS
    ) as mine:
        if mine:
            recover_overdue(ctx, grace_seconds=grace_seconds)


def redis_lost_messages(ctx: Context) -> bool:
    """Whether Redis is not the server (or not the data) the last pass saw. A brand-new
    Redis counts as one that lost everything: nothing is due in it then, or it is."""
    run_id = str(ctx.redis.info("server")["run_id"])
    previous = ctx.redis.getset(REDIS_SENTINEL, run_id)
    if isinstance(previous, bytes):
        previous = previous.decode()
    return bool(previous != run_id)


def sweep_once(ctx: Context) -> None:
    with held(
        ctx.redis, redis_keys.sweep_lock("recovery"), redis_keys.SWEEP_LOCK_TTL_SECONDS
    ) as mine:
        if not mine:
            log.info("another scheduler is sweeping")
            return
        run_sweeps(ctx)


def probe_once(ctx: Context) -> None:
    """Probe every enabled provider, unless another scheduler is doing it right now."""
    with held(
        ctx.redis, redis_keys.sweep_lock("provider-health"), redis_keys.SWEEP_LOCK_TTL_SECONDS
    ) as mine:
        if not mine:
            log.info("another scheduler is probing the providers")
            return
        probe_routes(ctx)


def run_forever(ctx: Context) -> None:
    """Sweep now and then every ``sweep_interval_seconds``, and probe the providers now and
    then every ``provider_health_interval_seconds``, until the process is stopped."""
    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_job(
        OverdueRecovery(ctx),
        "interval",
        seconds=ctx.settings.recovery_interval_seconds,
        next_run_time=datetime.now(UTC),
        id="overdue-recovery",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        sweep_once,
        "interval",
        args=[ctx],
        seconds=ctx.settings.sweep_interval_seconds,
        next_run_time=datetime.now(UTC),
        id="recovery-sweep",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        probe_once,
        "interval",
        args=[ctx],
        seconds=ctx.settings.provider_health_interval_seconds,
        next_run_time=datetime.now(UTC),
        id="provider-health-probe",
        max_instances=1,
        coalesce=True,
    )
    log.info(
        "scheduler: overdue work recovered every %gs (%gs of grace)",
        ctx.settings.recovery_interval_seconds,
        ctx.settings.recovery_grace_seconds,
    )
    log.info("scheduler: recovery sweep every %gs", ctx.settings.sweep_interval_seconds)
    log.info(
        "scheduler: provider health probe every %gs",
        ctx.settings.provider_health_interval_seconds,
    )
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=False)
