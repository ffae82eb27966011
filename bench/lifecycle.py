"""What the job worker spends per job between the API and the delivery.

Why it exists: the lifecycle (submit to the provider, poll or callback, keep the output,
finish and enqueue the delivery) runs in the Dramatiq worker, and its cost per job is what
bounds full lifecycles per second on a small box. This bench creates ``--jobs`` paid jobs
the way the API does (``create_generation``, which queues ``submit_job``), starts an
in-process worker on the ``jobs`` queue only (deliveries are left queued), and waits until
every job has ended. It counts, in the worker's threads only: Dramatiq messages by actor,
thread CPU seconds, database transactions and statements, Redis round trips, and provider
calls (submit, poll) by adapter. Everything runs on 127.0.0.1: a bundled Redis, a scratch
SQLite file (or ``--database-url``), the simulator and, with ``--callbacks``, the API that
providers call back.

    .venv/bin/python -m bench.lifecycle --jobs 500 --render-seconds 0
    .venv/bin/python -m bench.lifecycle --jobs 300 --render-seconds 60 --callbacks
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
import redis
import sqlalchemy as sa
from dramatiq.broker import MessageProxy

from backend.store.engine import normalize_url

CONTROL_TOKEN = secrets.token_urlsafe(16)


class Counted(dramatiq.Middleware):
    """Per message, in the thread that runs it: thread CPU time, and a flag the statement,
    transaction and Redis counters read so that only the worker's own work is counted."""

    def __init__(self, profile: bool) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.messages: collections.Counter[str] = collections.Counter()
        self.cpu: collections.Counter[str] = collections.Counter()
        self.counts: collections.Counter[str] = collections.Counter()
        self.profile = profile
        self.profiles: list[cProfile.Profile] = []

    def active(self) -> bool:
        return getattr(self.local, "started", None) is not None

    def count(self, what: str) -> None:
        if self.active():
            with self.lock:
                self.counts[what] += 1

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.local.started = time.thread_time()
        if self.profile:
            if not hasattr(self.local, "profiler"):
                self.local.profiler = cProfile.Profile(time.thread_time)
                with self.lock:
                    self.profiles.append(self.local.profiler)
            self.local.profiler.enable()

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, **_: Any
    ) -> None:
        self._end(message)

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._end(message)

    def _end(self, message: MessageProxy) -> None:
        if self.profile:
            self.local.profiler.disable()
        spent = time.thread_time() - self.local.started
        self.local.started = None
        with self.lock:
            self.messages[message.actor_name] += 1
            self.cpu[message.actor_name] += spent


def _patch_redis(counted: Counted) -> None:
    plain = redis.Redis.execute_command
    pipelined = redis.client.Pipeline.execute

    def execute_command(self: redis.Redis, *args: Any, **kwargs: Any) -> Any:
        counted.count("redis")
        counted.count(f"redis.{args[0]}")
        return plain(self, *args, **kwargs)

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted.count("redis")
        counted.count("redis.(pipeline)")
        return pipelined(self, *args, **kwargs)

    redis.Redis.execute_command = execute_command  # type: ignore[method-assign]
    redis.client.Pipeline.execute = execute  # type: ignore[method-assign]


def _count_provider_calls(counted: Counted, providers: dict[str, Any]) -> None:
    for provider in providers.values():
        for method in ("submit", "poll", "find_task"):
            original: Callable[..., Any] = getattr(provider, method)

            def wrapped(
                *a: Any, _o: Callable[..., Any] = original, _k: str = method, **k: Any
            ) -> Any:
                counted.count(f"provider.{_k}")
                return _o(*a, **k)

            setattr(provider, method, wrapped)


class Peak:
    """The most jobs processing at once, and Redis's memory and delay queue then."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.memory = 0
        self.first_memory = 0
        self.delayed = 0

    def sample(self, processing: int, client: redis.Redis) -> None:
        memory = int(client.info("memory")["used_memory"])
        self.first_memory = self.first_memory or memory
        self.memory = max(self.memory, memory)
        self.delayed = max(self.delayed, int(client.llen("dramatiq:jobs.DQ")))
        self.in_flight = max(self.in_flight, processing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--render-seconds", type=float, default=0.0)
    parser.add_argument("--callbacks", action="store_true")
    parser.add_argument("--model", default="seedance-1-pro")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--database-url")
    parser.add_argument("--profile", help="write a CPU-clock cProfile of the messages here")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lifecycle-bench-"))
    from backend import bundled_redis

    redis_process, redis_url = bundled_redis.start(work / "redis")
    os.environ["GENHOOK_REDIS_URL"] = redis_url
    try:
        run(args, work, redis_url)
    finally:
        redis_process.terminate()
        redis_process.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, redis_url: str) -> None:
    import backend.actors  # noqa: F401
    from backend.accounts import create_account
    from backend.api.app import create_app
    from backend.bundled_redis import free_port
    from backend.context import build_context, use_context
    from backend.jobs.create import create_generation
    from backend.schemas.generations import GenerationCreate
    from backend.secret_box import generate_key
    from backend.settings import Settings
    from backend.simulator.app import create_app as create_simulator
    from backend.simulator.credentials import all_provider_settings
    from backend.store.migrate import upgrade
    from backend.store.tables import jobs
    from bench.limits import GENEROUS_LIMITS
    from bench.stack import prepare_database
    from tests.support.wsgi_server import serve_wsgi as serve

    counted = Counted(profile=bool(args.profile))
    broker = dramatiq.get_broker()
    broker.add_middleware(counted)
    _patch_redis(counted)
    api_port = free_port()
    database_url = args.database_url or f"sqlite:///{work / 'genhook.db'}"
    prepare_database(database_url)
    simulator = create_simulator(render_seconds=args.render_seconds, control_token=CONTROL_TOKEN)
    with serve(simulator) as sim:
        settings = Settings.model_validate(
            {
                "database_url": database_url,
                "redis_url": redis_url,
                "secret_key": generate_key(),
                "var_dir": str(work / "var"),
                "webhook_allowed_networks": "127.0.0.0/8",
                "provider_allowed_networks": "127.0.0.0/8",
                "public_base_url": f"http://127.0.0.1:{api_port}" if args.callbacks else "",
                **all_provider_settings(sim),
                **GENEROUS_LIMITS,
            }
        )
        ctx = build_context(settings, broker=broker)
        upgrade(ctx.store.engine)
        use_context(ctx)
        sa.event.listen(ctx.store.engine, "begin", lambda conn: counted.count("transactions"))
        sa.event.listen(
            ctx.store.engine,
            "before_cursor_execute",
            lambda *a: counted.count("statements"),
        )
        _count_provider_calls(counted, ctx.providers)
        price = ctx.catalog.models[args.model].credits["5s"]
        account = create_account(ctx, "bench@example.com", credits=args.jobs * price + 10)
        ids = []
        for n in range(args.jobs):
            request = GenerationCreate(
                model=args.model,
                prompt=f"lifecycle bench #{n}",
                webhook_url="http://127.0.0.1:9/hook",
            )
            ids.append(create_generation(ctx, account.account.id, request).id)
        monitor = sa.create_engine(normalize_url(database_url))
        worker = dramatiq.Worker(broker, worker_threads=args.threads, queues={"jobs"})
        try:
            with serve(create_app(ctx), port=api_port):
                started = time.monotonic()
                cpu_start = time.process_time()
                worker.start()
                done = 0
                deadline = started + args.render_seconds * 3 + 120
                peak = Peak()
                sampled = 0.0
                while time.monotonic() < deadline:
                    with monitor.connect() as conn:
                        by_status: dict[str, int] = dict(
                            conn.execute(
                                sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
                            ).all()
                        )
                    done = sum(by_status.get(s, 0) for s in ("completed", "failed", "canceled"))
                    if done >= args.jobs:
                        break
                    if time.monotonic() - sampled >= 1.0:
                        sampled = time.monotonic()
                        peak.sample(by_status.get("processing", 0), ctx.redis)
                    time.sleep(0.05)
                wall = time.monotonic() - started
                process_cpu = time.process_time() - cpu_start
                with monitor.connect() as conn:
                    statuses: dict[str, int] = dict(
                        conn.execute(
                            sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
                        ).all()
                    )
        finally:
            worker.stop()
            monitor.dispose()
            use_context(None)
            ctx.close()
    report(args, counted, wall, process_cpu, statuses)
    print(
        f"peak: {peak.in_flight} jobs processing; Redis used_memory {peak.memory / 1e6:.1f} MB "
        f"(at start {peak.first_memory / 1e6:.1f} MB), {peak.delayed} messages in the "
        "delay queue in Redis"
    )


def report(
    args: argparse.Namespace,
    counted: Counted,
    wall: float,
    process_cpu: float,
    statuses: dict[str, int],
) -> None:
    n = args.jobs
    mode = "callbacks" if args.callbacks else "polled"
    print(
        f"{n} jobs {args.model}, renders {args.render_seconds:g} s, {mode}, {args.threads} threads"
    )
    print(f"statuses: {statuses}")
    print(f"wall {wall:.2f} s -> {n / wall:.1f} jobs/s; bench process CPU {process_cpu:.2f} s")
    total_cpu = sum(counted.cpu.values())
    print(f"worker thread CPU per job: {1000 * total_cpu / n:.2f} ms (total {total_cpu:.2f} s)")
    print(f"messages per job: {sum(counted.messages.values()) / n:.2f}")
    for actor, count in sorted(counted.messages.items()):
        cpu = counted.cpu[actor]
        print(f"  {actor:<16} {count / n:6.2f}/job  {1000 * cpu / count:6.2f} ms/message")
    for what, count in sorted(counted.counts.items()):
        print(f"{what:<20} {count / n:6.2f}/job")
    if args.profile:
        stats = pstats.Stats(*counted.profiles)
        stats.dump_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.top)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
