"""The periodic recovery sweeps (APScheduler), one run at a time across every scheduler.

Several schedulers may run (one per host, say); a Redis lock makes sure a sweep runs once
per period. The sweeps themselves are in ``backend/jobs/sweep.py``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler

from backend import redis_keys
from backend.context import Context
from backend.jobs.sweep import run_sweeps
from backend.locks import held

log = logging.getLogger(__name__)


def sweep_once(ctx: Context) -> None:
    with held(
        ctx.redis, redis_keys.sweep_lock("recovery"), redis_keys.SWEEP_LOCK_TTL_SECONDS
    ) as mine:
        if not mine:
            log.info("another scheduler is sweeping")
            return
        run_sweeps(ctx)


def run_forever(ctx: Context) -> None:
    """Sweep now and then every ``sweep_interval_seconds`` until the process is stopped."""
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
    log.info("scheduler: recovery sweep every %gs", ctx.settings.sweep_interval_seconds)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        scheduler.shutdown(wait=False)
