"""The pieces one run of ``bench/deliver.py`` needs, started before it and stopped after.

Why it exists: genhook runs for real in the delivery benchmark. This module starts the
receiver, Redis (a bundled ``redis-server`` unless a URL is given; that database is FLUSHED)
and the store (a fresh SQLite file, or the given PostgreSQL database, migrated and EMPTIED),
builds genhook's context on them, and describes each piece for the report.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import dramatiq
import redis
import sqlalchemy as sa

from backend import bundled_redis
from backend.context import Context, build_context, use_context
from backend.logging_setup import FORMAT
from backend.queue import WEBHOOKS_QUEUE
from backend.secret_box import generate_key
from backend.settings import Settings
from backend.store import Store
from backend.store.engine import normalize_url
from backend.store.migrate import upgrade
from backend.store.tables import metadata
from bench.cpu_usage import Roles
from bench.limits import GENEROUS_LIMITS
from bench.receiver import RECEIVER_DESCRIPTION, Receiver


@dataclass(frozen=True)
class Bench:
    """The running pieces of one run, and the lines that describe them."""

    ctx: Context
    receiver: Receiver
    monitor: sa.Engine
    roles: Roles
    database_kind: str
    #: (label, text) lines describing the pieces.
    setup: list[tuple[str, str]]


@contextmanager
def running(
    work_dir: Path, *, database_url: str | None, redis_url: str | None, threads: int
) -> Iterator[Bench]:
    """Receiver, Redis, migrated database, genhook context; all stopped and closed after."""
    with ExitStack() as stack:
        receiver = Receiver()
        stack.callback(receiver.stop)
        redis_url, redis_pid, redis_text = start_redis(redis_url, work_dir, stack)

        # The actors bind Dramatiq's global broker to GENHOOK_REDIS_URL on first import.
        os.environ["GENHOOK_REDIS_URL"] = redis_url
        import backend.actors  # noqa: F401

        database_url = database_url or f"sqlite:///{work_dir / 'genhook.db'}"
        database_kind, database_version = prepare_database(database_url)
        settings = Settings.model_validate(
            {
                "database_url": database_url,
                "redis_url": redis_url,
                "secret_key": generate_key(),
                "webhook_allowed_networks": "127.0.0.0/8",
                # The jobs are completed by the bench itself; no provider renders them.
                "simulator_fallback": True,
                **GENEROUS_LIMITS,
            }
        )
        configure_worker_logging(work_dir / "worker.log")
        ctx = build_context(settings, broker=dramatiq.get_broker())
        use_context(ctx)
        stack.callback(ctx.close)
        stack.callback(use_context, None)
        monitor = sa.create_engine(normalize_url(database_url))
        stack.callback(monitor.dispose)

        postgres_database = (
            sa.make_url(database_url).database if database_kind == "PostgreSQL" else None
        )
        setup = [
            ("database", f"{database_kind} {database_version}, {hide_password(database_url)}"),
            ("redis", redis_text),
            ("receiver", f"{RECEIVER_DESCRIPTION} (pid {receiver.process.pid})"),
            (
                "worker",
                f"dramatiq.Worker in this process, {threads} threads, "
                f"queue {WEBHOOKS_QUEUE!r} only; INFO log to a file",
            ),
        ]
        yield Bench(
            ctx=ctx,
            receiver=receiver,
            monitor=monitor,
            roles=Roles(receiver.process.pid or 0, redis_pid, postgres_database),
            database_kind=database_kind,
            setup=setup,
        )


def start_redis(
    redis_url: str | None, work_dir: Path, stack: ExitStack
) -> tuple[str, int | None, str]:
    """The Redis to use, emptied now and again at the end (the ``jobs`` queue keeps the
    submit messages no worker consumes): its URL, its pid if it is ours, a description."""
    pid = None
    if redis_url:
        url = redis_url
        where = f"{hide_password(url)}, flushed"
    else:
        process, url = bundled_redis.start(work_dir / "redis")
        stack.callback(stop_process, process)
        pid = process.pid
        where = f"bundled redis-server (pid {pid}), appendonly, {url}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    stack.callback(client.close)
    stack.callback(client.flushdb)
    return url, pid, f"Redis {client.info('server')['redis_version']}: {where}"


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(10)


def prepare_database(url: str) -> tuple[str, str]:
    """Migrate and empty the bench's database; returns its kind and version."""
    store = Store(url)
    upgrade(store.engine)
    with store.begin() as conn:
        if store.engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            described = ("PostgreSQL", str(conn.execute(sa.text("SHOW server_version")).scalar()))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
            described = ("SQLite", f"{sqlite3.sqlite_version} (WAL)")
    store.dispose()
    return described


def configure_worker_logging(path: Path) -> None:
    """What ``genhook worker`` logs (one INFO line per attempt), to a file instead of stderr."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("httpx").setLevel(logging.WARNING)


def hide_password(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)
