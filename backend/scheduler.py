"""The recovery passes and the provider health probe (APScheduler), one run at a time
across every scheduler.

Several schedulers may run (one per host, say); a Redis lock makes sure each pass runs once
per period. The passes themselves are in ``backend/jobs/sweep.py``, the probe in
``backend/providers/probe.py``.

SIGTERM (or Ctrl-C) stops it: no new run starts, a run in progress gets
``STOP_TIMEOUT_SECONDS`` to finish, and the process exits. A run cut short changes nothing
half-way (each sweep's changes are compare-and-sets in transactions) and its lock is
released, so the next scheduler sweeps at once.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

import redis
from apscheduler.schedulers.background import BackgroundScheduler

from backend import redis_keys
from backend.context import Context
from backend.jobs.sweep import recover_overdue, run_sweeps
from backend.locks import held, release_held_by
from backend.providers.probe import probe_routes

log = logging.getLogger(__name__)

#: After SIGTERM, how long a sweep or probe already running may take to finish.
STOP_TIMEOUT_SECONDS = 10.0

#: Holds the run id of the Redis server the last fast pass saw: missing (flushed, or a
#: restart without persistence) or different (a restart) means messages were lost.
REDIS_SENTINEL = f"{redis_keys.PREFIX}:recovery:redis_run_id"


class OverdueRecovery:
    """The fast recovery pass, run at start and then every ``recovery_interval_seconds``.

    When Redis was flushed or restarted (or could not be reached), every message it held
    may be gone: that pass takes everything due, with no grace."""

    def __init__(self) -> None:
        self.redis_was_down = False

    def __call__(self, ctx: Context) -> None:
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


class Runs:
    """The sweeps and probes running right now, by thread, so a stop can wait for them."""

    def __init__(self) -> None:
        self._threads: set[int] = set()
        self._changed = threading.Condition()

    def track(self, run: Callable[[Context], None]) -> Callable[[Context], None]:
        @functools.wraps(run)
        def tracked(ctx: Context) -> None:
            with self._changed:
                self._threads.add(threading.get_ident())
            try:
                run(ctx)
            finally:
                with self._changed:
                    self._threads.discard(threading.get_ident())
                    self._changed.notify_all()

        return tracked

    def wait_idle(self, timeout_seconds: float) -> set[int]:
        """Wait for every run to end; returns the threads of those still running."""
        with self._changed:
            self._changed.wait_for(lambda: not self._threads, timeout_seconds)
            return set(self._threads)


def run_forever(ctx: Context) -> None:
    """Sweep now and then every ``sweep_interval_seconds``, and probe the providers now and
    then every ``provider_health_interval_seconds``, until SIGTERM or SIGINT."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runs = Runs()
    scheduler = BackgroundScheduler(timezone=UTC)
    periodic = (
        ("overdue-recovery", OverdueRecovery(), ctx.settings.recovery_interval_seconds),
        ("recovery-sweep", sweep_once, ctx.settings.sweep_interval_seconds),
        ("provider-health-probe", probe_once, ctx.settings.provider_health_interval_seconds),
    )
    for job_id, run, every_seconds in periodic:
        # Each starts at once, never overlaps itself, and a missed run is not repeated.
        scheduler.add_job(
            runs.track(run),
            "interval",
            args=[ctx],
            seconds=every_seconds,
            next_run_time=datetime.now(UTC),
            id=job_id,
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
    scheduler.start()
    stop.wait()
    stop_within(scheduler, runs, STOP_TIMEOUT_SECONDS)


def stop_within(scheduler: BackgroundScheduler, runs: Runs, timeout_seconds: float) -> None:
    """Start nothing new, give the runs in progress ``timeout_seconds``, then return; if one
    is still running, release its locks and end the process at once (the interpreter would
    otherwise wait for that thread at exit, for as long as it takes)."""
    scheduler.shutdown(wait=False)
    unfinished = runs.wait_idle(timeout_seconds)
    if not unfinished:
        log.info("scheduler stopped")
        return
    released = release_held_by(unfinished)
    log.warning(
        "scheduler stopped with %d run(s) unfinished after %gs (%d lock(s) released); "
        "the next sweep does their work",
        len(unfinished),
        timeout_seconds,
        released,
    )
    logging.shutdown()
    os._exit(0)
