"""The periodic recovery sweeps and provider health probe (APScheduler), one run at a time
across every scheduler.

Several schedulers may run (one per host, say); a Redis lock makes sure a sweep runs once
per period. The sweeps themselves are in ``backend/jobs/sweep.py``, the probe in
``backend/providers/probe.py``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler

from backend import redis_keys
from backend.context import Context
from backend.jobs.sweep import run_sweeps
from backend.locks import held
from backend.providers.probe import probe_routes

log = logging.getLogger(__name__)


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
    log.info("scheduler: recovery sweep every %gs", ctx.settings.sweep_interval_seconds)
    log.info(
        "scheduler: provider health probe every %gs",
        ctx.settings.provider_health_interval_seconds,
    )
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=False)
