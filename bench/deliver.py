"""Webhook delivery throughput benchmark: how many webhooks genhook's worker delivers per second.

Why it exists: every finished job sends a signed webhook, one Dramatiq message per attempt
(``backend/jobs/deliver.py``). This script measures how fast the real pipeline empties a
backlog of deliveries into a receiver that answers at once, and, in the same run and to the
same receiver, how fast a plain loop of keep-alive httpx POSTs with the same body and headers
goes. The ratio of the two is what genhook's bookkeeping costs per webhook.

How it works:

* The receiver is a minimal asyncio HTTP/1.1 server in its own process on 127.0.0.1: it
  reads each request, answers ``200`` with an empty body at once, keeps connections alive,
  and counts POSTs, body bytes and distinct ``webhook-id`` headers per path. It runs apart
  from the worker so that it does not share the worker's GIL.
* genhook runs for real: the store (a fresh SQLite file, or PostgreSQL with
  ``--database-url``, migrated here and EMPTIED), Redis (a bundled ``redis-server`` unless
  ``--redis-url`` is given; that database is FLUSHED), and a ``dramatiq.Worker`` with
  ``--threads`` threads in this process, the same class ``genhook worker`` runs in its one
  worker process, here consuming only the ``webhooks`` queue. Worker logs (one INFO line
  per attempt, as in production) go to a file.
* ``--count`` jobs are created (``create_generation``), moved to ``processing`` and
  completed (``finish.complete``), which writes one pending delivery per job to the outbox and
  enqueues its message; nothing consumes them yet.
* Baseline: one thread, one ``httpx.Client`` (keep-alive), ``--count`` POSTs of the first
  delivery's body with the headers genhook sends (signature headers, User-Agent, ...).
* Delivery: the clock starts as the worker starts, with every message already waiting in
  Redis, and stops when the database shows every delivery ``delivered`` (checked every
  20 ms). The receiver must then have seen exactly ``--count`` POSTs with as many
  distinct ``webhook-id`` values.
* ``--profile FILE`` profiles every message in the worker thread that runs it (``python -m
  cProfile`` would only see the main thread, which just waits) and writes pstats to FILE;
  ``--profile-clock cpu`` counts each thread's CPU time instead of the time it spent
  (which includes waiting for locks, sockets and the GIL).

How to run it (from the repository, with genhook installed)::

    python bench/deliver.py --count 2000 --threads 8
    psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE genhook_bench'
    python bench/deliver.py --count 2000 --threads 8 \\
        --database-url postgresql://postgres@127.0.0.1:5432/genhook_bench

Exit status: 0 when every delivery was delivered and the receiver got each exactly once,
1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import logging
import multiprocessing
import os
import platform
import pstats
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import redis
import sqlalchemy as sa
from dramatiq.broker import MessageProxy

from backend import bundled_redis
from backend.accounts import create_account
from backend.catalog import DURATIONS, MODELS
from backend.context import Context, build_context, use_context
from backend.jobs import finish
from backend.jobs.create import create_generation
from backend.jobs.states import JobStatus
from backend.logging_setup import FORMAT
from backend.queue import WEBHOOKS_QUEUE
from backend.schemas.generations import GenerationCreate
from backend.settings import Settings
from backend.store import Store
from backend.store import jobs as jobs_store
from backend.store.accounts import get_account
from backend.store.engine import normalize_url
from backend.store.migrate import upgrade
from backend.store.tables import deliveries, delivery_attempts, metadata
from backend.webhooks.sender import USER_AGENT
from backend.webhooks.signing import signature_headers

WEBHOOK_PATH = "/webhooks"
BASELINE_PATH = "/baseline"
STATS_PATH = "/stats"
MODEL = "seedance-1-pro"
#: How often the database is asked whether every delivery is done.
POLL_INTERVAL_SECONDS = 0.02
RECEIVER_START_TIMEOUT_SECONDS = 10.0
WORKER_STOP_TIMEOUT_MS = 10_000
RECEIVER_DESCRIPTION = (
    "asyncio HTTP/1.1 server in its own process, keep-alive, answers 200 with an empty body at once"
)
#: What ``--profile`` measures in each worker thread.
PROFILE_CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    count: int
    threads: int
    database_url: str | None
    redis_url: str | None
    max_seconds: float
    profile: Path | None
    profile_clock: str
    #: The arguments as given, for the report.
    argv: tuple[str, ...]


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        description="Webhook delivery throughput of genhook's worker against a plain httpx loop."
    )
    parser.add_argument("--count", type=_positive_int, default=2000, help="deliveries and POSTs")
    parser.add_argument("--threads", type=_positive_int, default=8, help="worker threads")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a database the bench may EMPTY (default: a fresh SQLite file in a temp dir)",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="a Redis database the bench may FLUSH (default: a bundled redis-server)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="limit for the delivery phase"
    )
    parser.add_argument("--profile", type=Path, default=None, help="write worker pstats here")
    parser.add_argument(
        "--profile-clock",
        choices=PROFILE_CLOCKS,
        default="wall",
        help="wall: time spent, waits included; cpu: the thread's CPU time only",
    )
    argv = tuple(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.max_seconds <= 0:
        parser.error("--max-seconds must be positive")
    return Config(
        count=args.count,
        threads=args.threads,
        database_url=args.database_url,
        redis_url=args.redis_url,
        max_seconds=args.max_seconds,
        profile=args.profile,
        profile_clock=args.profile_clock,
        argv=argv,
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# --- The receiver (runs in a child process) --------------------------------------------------

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class _Tally:
    """POSTs, body bytes and distinct ``webhook-id`` values per path (one event loop: no lock)."""

    def __init__(self) -> None:
        self.paths: dict[str, dict[str, Any]] = {}

    def add(self, path: str, webhook_id: bytes | None, body_bytes: int) -> None:
        entry = self.paths.setdefault(path, {"posts": 0, "bytes": 0, "ids": set()})
        entry["posts"] += 1
        entry["bytes"] += body_bytes
        if webhook_id is not None:
            entry["ids"].add(webhook_id)

    def snapshot(self) -> dict[str, Any]:
        return {
            path: {"posts": e["posts"], "bytes": e["bytes"], "distinct_ids": len(e["ids"])}
            for path, e in self.paths.items()
        }


async def _answer(
    tally: _Tally, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, _, header_block = head.partition(b"\r\n")
            method, path, _ = request_line.decode("latin-1").split(" ", 2)
            headers: dict[bytes, bytes] = {}
            for line in header_block.split(b"\r\n"):
                name, colon, value = line.partition(b":")
                if colon:
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            body = await reader.readexactly(length) if length else b""
            if method == "GET" and path == STATS_PATH:
                data = json.dumps(tally.snapshot()).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
            else:
                tally.add(path, headers.get(b"webhook-id"), len(body))
                writer.write(_OK)
            await writer.drain()
            if headers.get(b"connection", b"").lower() == b"close":
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        return  # the client closed the connection
    finally:
        writer.close()


def serve_receiver(port_pipe: Connection) -> None:
    """Child-process entry: serve on a free port of 127.0.0.1, send the port, run forever."""

    async def main() -> None:
        tally = _Tally()
        server = await asyncio.start_server(
            lambda r, w: _answer(tally, r, w), "127.0.0.1", 0, backlog=1024
        )
        port_pipe.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


class Receiver:
    """The receiver's process, its URL and its counters."""

    def __init__(self) -> None:
        spawn = multiprocessing.get_context("spawn")
        ours, theirs = spawn.Pipe()
        self.process = spawn.Process(target=serve_receiver, args=(theirs,), daemon=True)
        self.process.start()
        if not ours.poll(RECEIVER_START_TIMEOUT_SECONDS):
            self.process.terminate()
            raise RuntimeError("the receiver did not start")
        self.url = f"http://127.0.0.1:{ours.recv()}"

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(self.url + STATS_PATH, trust_env=False).json()
        return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


# --- CPU accounting ---------------------------------------------------------------------------


CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """CPU seconds so far of every process, and of the whole machine, at one instant (Linux
    ``/proc``; empty elsewhere). Processes are named by ``comm``, PostgreSQL backends by
    their title (``postgres: <user> <database> <client> <state>``)."""

    processes: dict[int, tuple[str, float]]
    #: (busy, total) CPU seconds of the machine.
    machine: tuple[float, float] | None

    @classmethod
    def read(cls) -> Usage:
        processes: dict[int, tuple[str, float]] = {}
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                stat = (entry / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                if name == "postgres":
                    name = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except (OSError, ValueError, UnicodeDecodeError):
                continue  # the process has just ended
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND
            processes[int(entry.name)] = (name, cpu)
        return cls(processes, _machine_cpu_seconds())


def _machine_cpu_seconds() -> tuple[float, float] | None:
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
    except OSError:
        return None
    values = [int(v) for v in line.split()[1:9]]  # user .. steal; guest time is in user already
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values) / CLOCK_TICKS_PER_SECOND
    return total - idle / CLOCK_TICKS_PER_SECOND, total


@dataclass(frozen=True)
class Roles:
    """Which processes are part of the run: this one, the receiver, and Redis and PostgreSQL
    backends when they serve only the bench."""

    receiver_pid: int
    redis_pid: int | None
    postgres_database: str | None

    def of(self, pid: int, name: str) -> str | None:
        if pid == os.getpid():
            return "bench"
        if pid == self.receiver_pid:
            return "receiver"
        if pid == self.redis_pid:
            return "redis"
        database = self.postgres_database
        if database and name.startswith("postgres: ") and f" {database} " in name:
            return "postgres"
        return None


def usage_text(before: Usage, after: Usage, roles: Roles, bench_role: str) -> str:
    """CPU seconds over a phase per process of the run, and what else used the machine."""
    if not after.processes or before.machine is None or after.machine is None:
        return "CPU: not measured (no /proc)"
    ours: dict[str, float] = {bench_role: 0.0, "receiver": 0.0}
    others: dict[str, float] = {}
    for pid, (name, cpu) in after.processes.items():
        used = cpu - before.processes.get(pid, (name, 0.0))[1]
        role = roles.of(pid, name)
        if role is None:
            others[name] = others.get(name, 0.0) + used
        else:
            role = bench_role if role == "bench" else role
            ours[role] = ours.get(role, 0.0) + used
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    top = sorted(((cpu, name) for name, cpu in others.items() if cpu >= 0.05), reverse=True)[:3]
    text = "CPU s: " + ", ".join(f"{role} {cpu:.2f}" for role, cpu in ours.items())
    text += f"; other processes {sum(others.values()):.2f}"
    if top:
        text += " (" + ", ".join(f"{name[:24]} {cpu:.2f}" for cpu, name in top) + ")"
    unattributed = busy - sum(ours.values()) - sum(others.values())
    text += f", not attributed {max(0.0, unattributed):.2f}"
    if total:
        text += f"; machine busy {100 * busy / total:.0f}%"
    return text


# --- genhook's side ---------------------------------------------------------------------------


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


def create_finished_jobs(ctx: Context, count: int, webhook_url: str) -> None:
    """``count`` completed jobs, each with one pending delivery whose message is queued."""
    price = MODELS[MODEL].price(DURATIONS["5s"])
    account = create_account(ctx, "bench@example.com", credits=count * price).account
    for n in range(count):
        request = GenerationCreate(
            model=MODEL,
            prompt=f"genhook delivery bench #{n}: product reveal on white",
            webhook_url=webhook_url,
            metadata={"bench": "deliver", "n": str(n)},
        )
        job = create_generation(ctx, account.id, request)
        with ctx.store.begin() as conn:
            jobs_store.transition(
                conn,
                job.id,
                JobStatus.PROCESSING,
                provider_job_id=f"bench-{n}",
                submitted_at=ctx.now(),
            )
        finish.complete(ctx, job.id, output_url=f"https://cdn.example.com/bench/{n}.mp4")


def sample_request(ctx: Context, monitor: sa.Engine) -> tuple[bytes, dict[str, str]]:
    """The body of one real delivery and the headers genhook sends with it."""
    with monitor.connect() as conn:
        row = conn.execute(sa.select(deliveries).order_by(deliveries.c.id).limit(1)).one()
    with ctx.store.begin() as conn:
        account = get_account(conn, row.account_id)
    assert account is not None and row.payload is not None
    body = row.payload.encode()
    headers = signature_headers(
        secrets=[account.signing_secret],
        message_id=row.id,
        event=row.event,
        timestamp=ctx.now(),
        body=body,
    )
    return body, {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}


def delivery_counts(monitor: sa.Engine) -> dict[str, int]:
    """Deliveries per status (a plain read: on SQLite it takes no write lock)."""
    query = sa.select(deliveries.c.status, sa.func.count()).group_by(deliveries.c.status)
    with monitor.connect() as conn:
        return {status: n for status, n in conn.execute(query)}


def attempt_count(monitor: sa.Engine) -> int:
    with monitor.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(delivery_attempts)).scalar_one()


class MessageProfiles(dramatiq.Middleware):
    """A cProfile of every message, taken in the worker thread that processes it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self.profiles: list[cProfile.Profile] = []

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if not hasattr(self._local, "profile"):
            self._local.profile = cProfile.Profile(self._clock)
            with self._lock:
                self.profiles.append(self._local.profile)
        self._local.profile.enable()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        self._pause()

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self._pause()

    def _pause(self) -> None:
        profile = getattr(self._local, "profile", None)
        if profile is not None:
            profile.disable()

    def stats(self, stream: io.StringIO) -> pstats.Stats:
        return pstats.Stats(*self.profiles, stream=stream)


@dataclass(frozen=True)
class Phase:
    """One timed phase: how many requests succeeded, in how long, and the CPU around it."""

    succeeded: int
    seconds: float
    before: Usage
    after: Usage

    @property
    def rate(self) -> float:
        return self.succeeded / self.seconds if self.seconds > 0 else 0.0


def run_baseline(
    url: str, body: bytes, headers: dict[str, str], count: int
) -> tuple[Phase, Counter[int]]:
    """``count`` POSTs in a loop on one keep-alive connection; also returns the statuses."""
    statuses: Counter[int] = Counter()
    with httpx.Client(trust_env=False) as client:
        before = Usage.read()
        started = time.perf_counter()
        for _ in range(count):
            statuses[client.post(url, content=body, headers=headers).status_code] += 1
        seconds = time.perf_counter() - started
        after = Usage.read()
    return Phase(statuses[200], seconds, before, after), statuses


def run_deliveries(
    config: Config, monitor: sa.Engine, profiles: MessageProfiles | None
) -> tuple[Phase, dict[str, int]]:
    """Start the worker, wait until no delivery is pending; also returns the final counts."""
    broker = dramatiq.get_broker()
    if profiles is not None:
        broker.add_middleware(profiles)
    worker = dramatiq.Worker(broker, queues={WEBHOOKS_QUEUE}, worker_threads=config.threads)
    before = Usage.read()
    started = time.perf_counter()
    worker.start()
    try:
        while True:
            counts = delivery_counts(monitor)
            seconds = time.perf_counter() - started
            if not counts.get("pending") or seconds > config.max_seconds:
                break
            time.sleep(POLL_INTERVAL_SECONDS)
        after = Usage.read()
    finally:
        worker.stop(timeout=WORKER_STOP_TIMEOUT_MS)
    return Phase(counts.get("delivered", 0), seconds, before, after), counts


# --- The run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    """The running pieces of one run, and the lines that describe them."""

    config: Config
    ctx: Context
    receiver: Receiver
    monitor: sa.Engine
    roles: Roles
    database_kind: str
    #: (label, text) lines describing the pieces.
    setup: list[tuple[str, str]]


@contextmanager
def running(config: Config, work_dir: Path) -> Iterator[Bench]:
    """Receiver, Redis, migrated database, genhook context; all stopped and closed after."""
    with ExitStack() as stack:
        receiver = Receiver()
        stack.callback(receiver.stop)
        redis_url, redis_pid, redis_text = start_redis(config, work_dir, stack)

        # The actors bind Dramatiq's global broker to GENHOOK_REDIS_URL on first import.
        os.environ["GENHOOK_REDIS_URL"] = redis_url
        import backend.actors  # noqa: F401

        database_url = config.database_url or f"sqlite:///{work_dir / 'genhook.db'}"
        database_kind, database_version = prepare_database(database_url)
        settings = Settings.model_validate(
            {
                "database_url": database_url,
                "redis_url": redis_url,
                "webhook_allowed_networks": "127.0.0.0/8",
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
                f"dramatiq.Worker in this process, {config.threads} threads, "
                f"queue {WEBHOOKS_QUEUE!r} only; INFO log to a file",
            ),
        ]
        yield Bench(
            config=config,
            ctx=ctx,
            receiver=receiver,
            monitor=monitor,
            roles=Roles(receiver.process.pid or 0, redis_pid, postgres_database),
            database_kind=database_kind,
            setup=setup,
        )


def start_redis(config: Config, work_dir: Path, stack: ExitStack) -> tuple[str, int | None, str]:
    """The Redis to use, emptied now and again at the end (the ``jobs`` queue keeps the
    submit messages no worker consumes): its URL, its pid if it is ours, a description."""
    pid = None
    if config.redis_url:
        url = config.redis_url
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


def hide_password(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def describe_machine() -> list[tuple[str, str]]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return [
        ("machine", f"{os.cpu_count()} CPUs (os.cpu_count), {model}; load average {load}"),
        ("python", f"{platform.python_version()} on {platform.platform()}"),
        ("genhook", git_revision()),
    ]


def git_revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"commit {commit}" + (" + uncommitted changes" if dirty else "")


def command_line(config: Config) -> str:
    hidden = {url: hide_password(url) for url in (config.database_url, config.redis_url) if url}
    return shlex.join(["python", "bench/deliver.py", *(hidden.get(a, a) for a in config.argv)])


def run(bench: Bench) -> bool:
    """Prepare the backlog, time both phases, print the report; ``True`` if all went well."""
    config = bench.config
    print(f"genhook webhook delivery benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    say("command", command_line(config))
    for label, text in [*describe_machine(), *bench.setup]:
        say(label, text)

    started = time.perf_counter()
    create_finished_jobs(bench.ctx, config.count, bench.receiver.url + WEBHOOK_PATH)
    prepared = time.perf_counter() - started
    say(
        "prepared",
        f"{config.count} completed jobs, one pending delivery each, in {prepared:.1f} s "
        "(not timed; the messages wait in Redis)",
    )
    body, headers = sample_request(bench.ctx, bench.monitor)
    say("request", f"{len(body)} body bytes, {len(headers)} headers")

    url = bench.receiver.url + BASELINE_PATH
    baseline, statuses = run_baseline(url, body, headers, config.count)
    say(
        "baseline",
        f"{baseline.succeeded} POSTs answered 200 in {baseline.seconds:.2f} s: "
        f"{baseline.rate:,.1f} POSTs/s (one thread, one keep-alive httpx.Client)",
    )
    say("", usage_text(baseline.before, baseline.after, bench.roles, "client"))

    profiles = MessageProfiles(PROFILE_CLOCKS[config.profile_clock]) if config.profile else None
    delivery, counts = run_deliveries(config, bench.monitor, profiles)
    paths = bench.receiver.stats()
    received = paths.get(WEBHOOK_PATH, {"posts": 0, "distinct_ids": 0, "bytes": 0})
    say(
        "genhook",
        f"{delivery.succeeded} delivered in {delivery.seconds:.2f} s: "
        f"{delivery.rate:,.1f} deliveries/s ({config.threads} worker threads)",
    )
    say("", usage_text(delivery.before, delivery.after, bench.roles, "worker process"))
    say("", f"deliveries {counts}; {attempt_count(bench.monitor)} attempts logged")
    say(
        "received",
        f"{received['posts']} webhooks with {received['distinct_ids']} distinct webhook-ids, "
        f"{_mean_body(received)} body bytes each; "
        f"{_mean_body(paths.get(BASELINE_PATH, {}))} per baseline POST",
    )
    ratio = delivery.rate / baseline.rate if baseline.rate else 0.0
    say("ratio", f"deliveries/s / POSTs/s = {ratio:.3f}")
    say(
        "markdown row",
        f"| {bench.database_kind} | {config.count:,} | {config.threads} "
        f"| {delivery.rate:,.1f} | {baseline.rate:,.1f} | {ratio:.3f} |",
    )
    if profiles is not None and config.profile is not None:
        report_profile(profiles, config.profile, config.profile_clock)

    ok = statuses == {200: config.count} and delivery.succeeded == config.count
    ok = ok and received["posts"] == config.count == received["distinct_ids"]
    if not ok:
        say("FAILED", "not every delivery was delivered exactly once (see above)")
    return ok


def say(label: str, text: str) -> None:
    print(f"{label:<18}{text}")


def _mean_body(path_stats: dict[str, int]) -> str:
    posts = path_stats.get("posts", 0)
    return f"{path_stats['bytes'] / posts:.0f}" if posts else "-"


def report_profile(profiles: MessageProfiles, path: Path, clock: str) -> None:
    stream = io.StringIO()
    stats = profiles.stats(stream)
    stats.dump_stats(path)
    stats.sort_stats("tottime").print_stats(25)
    say("profile", f"{clock} clock, {path} (python -m pstats); top 25 by own time:")
    print(stream.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="genhook-bench-deliver-"))
    with running(config, work_dir) as bench:
        ok = run(bench)
    if ok:
        shutil.rmtree(work_dir, ignore_errors=True)
    else:
        say("kept", f"{work_dir} (worker.log, genhook.db) for inspection")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
