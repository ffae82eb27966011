"""The command lines of genhook's long-running processes.

Shared by ``genhook up`` (which supervises them) and the production subcommands
(``genhook api``, ``genhook worker``), so both run the processes the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from backend.settings import Settings
from backend.worker_pools import pool_for

API_APP = "backend.api.wsgi:application()"
SIMULATOR_APP = "backend.simulator.app:gunicorn_app()"
API_WORKER_CLASS = "backend.api.worker.BufferedThreadWorker"
#: Seconds gunicorn gives in-flight requests on shutdown.
GRACEFUL_TIMEOUT_SECONDS = 10


def python_command(*args: str) -> list[str]:
    """Run with this interpreter, so the child sees the same installed genhook."""
    return [sys.executable, *args]


def gunicorn_command(bind: str, workers: int, app: str, *, threads: int = 1) -> list[str]:
    return python_command(
        "-m", "gunicorn", "--bind", bind, "--workers", str(workers), "--threads", str(threads),
        "--graceful-timeout", str(GRACEFUL_TIMEOUT_SECONDS), "--log-level", "warning",
        "--no-control-socket",  # two gunicorn masters would claim the same default path
        app,
    )  # fmt: skip


def api_command(settings: Settings, bind: str, workers: int) -> list[str]:
    """The API under gunicorn with genhook's worker (``backend/api/worker.py``): requests
    are read whole in each process's event loop, within deadlines, before a thread serves
    them, so slow clients cannot take the API down."""
    from backend.api.worker import gunicorn_keepalive

    return python_command(
        "-m", "gunicorn", "--bind", bind, "--workers", str(workers),
        "--worker-class", API_WORKER_CLASS, "--threads", str(settings.api_threads),
        "--worker-connections", str(settings.api_max_connections),
        "--keep-alive", str(gunicorn_keepalive(settings.api_keepalive_seconds)),
        "--graceful-timeout", str(GRACEFUL_TIMEOUT_SECONDS), "--log-level", "warning",
        "--no-control-socket",
        API_APP,
    )  # fmt: skip


def worker_command(settings: Settings, queues: Sequence[str] | None = None) -> list[str]:
    """A worker of the pool serving ``queues`` (none: every queue), with that pool's
    processes and threads (``backend/worker_pools.py``). Dramatiq drains on SIGTERM for the
    shutdown timeout (its own default is 10 minutes); what is still running then is
    requeued by ``backend.shutdown``."""
    pool = pool_for(settings, queues)
    shutdown_ms = round(settings.worker_shutdown_timeout_seconds * 1000)
    only = ["--queues", *pool.queues] if pool.queues else []
    return python_command(
        "-m", "dramatiq", "backend.actors",
        "--processes", str(pool.processes),
        "--threads", str(pool.threads),
        "--worker-shutdown-timeout", str(shutdown_ms),
        *only,
    )  # fmt: skip
