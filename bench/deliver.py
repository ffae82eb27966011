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

The pieces live beside this script, one module each: ``receiver.py`` (the receiver process),
``stack.py`` (starting and stopping Redis, the store and genhook's context), ``backlog.py``
(the jobs and deliveries to drain), ``cpu_usage.py`` (CPU seconds per process from ``/proc``)
and ``message_profiles.py`` (``--profile``).

How to run it (from the repository, with genhook installed)::

    python bench/deliver.py --count 2000 --threads 8
    python bench/deliver.py --count 2000 --threads 8 --accounts 4   # caps out of reach
    psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE genhook_bench'
    python bench/deliver.py --count 2000 --threads 8 \\
        --database-url postgresql://postgres@127.0.0.1:5432/genhook_bench

Exit status: 0 when every delivery was delivered and the receiver got each exactly once,
1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as ``python bench/deliver.py``: Python put bench/ on the path, not the repository.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dramatiq
import httpx
import sqlalchemy as sa

from backend.queue import WEBHOOKS_QUEUE
from bench.backlog import attempt_count, create_finished_jobs, delivery_counts, sample_request
from bench.cpu_usage import Usage, usage_text
from bench.machine import describe_machine
from bench.message_profiles import PROFILE_CLOCKS, MessageProfiles
from bench.stack import Bench, hide_password, running

WEBHOOK_PATH = "/webhooks"
BASELINE_PATH = "/baseline"
#: How often the database is asked whether every delivery is done.
POLL_INTERVAL_SECONDS = 0.02
WORKER_STOP_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Config:
    count: int
    threads: int
    accounts: int
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
        "--accounts",
        type=_positive_int,
        default=1,
        help="accounts the deliveries are spread over (1: one account to one receiver, "
        "where the webhook caps bind; more: the spread case, where they should cost nothing)",
    )
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
        accounts=args.accounts,
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


# --- The run ----------------------------------------------------------------------------------


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


def command_line(config: Config) -> str:
    hidden = {url: hide_password(url) for url in (config.database_url, config.redis_url) if url}
    return shlex.join(["python", "bench/deliver.py", *(hidden.get(a, a) for a in config.argv)])


def run(config: Config, bench: Bench) -> bool:
    """Prepare the backlog, time both phases, print the report; ``True`` if all went well."""
    print(f"genhook webhook delivery benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    say("command", command_line(config))
    for label, text in [*describe_machine(), *bench.setup]:
        say(label, text)

    started = time.perf_counter()
    create_finished_jobs(
        bench.ctx, config.count, bench.receiver.url + WEBHOOK_PATH, accounts=config.accounts
    )
    prepared = time.perf_counter() - started
    say(
        "prepared",
        f"{config.count} completed jobs of {config.accounts} account(s), one pending delivery "
        f"each, in {prepared:.1f} s (not timed; the messages wait in Redis)",
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
        f"| {bench.database_kind} | {config.count:,} | {config.threads} | {config.accounts} "
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
    with running(
        work_dir,
        database_url=config.database_url,
        redis_url=config.redis_url,
        threads=config.threads,
    ) as bench:
        ok = run(config, bench)
    if ok:
        shutil.rmtree(work_dir, ignore_errors=True)
    else:
        say("kept", f"{work_dir} (worker.log, genhook.db) for inspection")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
