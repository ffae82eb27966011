"""Every figure of issue 12 in one command, side by side with its ceiling, as one table.

Why it exists: the figures of "ten times faster on the same two cores" must be taken the same
way each time, next to what the machine does with no genhook at all, and several times,
since the machine is shared. Each run measures, in this order:

* the ceilings: a bare Falcon hello-world (``bench/hello.py``) under gunicorn with as many
  workers and threads as genhook's API, ``GET`` and ``POST`` with ``wrk -c32``; and the
  same app under gunicorn's default sync worker (a new connection per request), the ceiling
  the issue's own ratios were taken against;
* ``submit``: ``POST /v1/video/generations`` with ``wrk -c32`` against ``genhook up`` (API,
  workers, scheduler, simulator rendering in ``--render-seconds``, default 0), then, once
  those jobs are done, ``status``: ``GET /v1/video/generations/{id}`` over them, and
  ``lifecycle``: jobs with a webhook URL, from the first submission to the last webhook at
  the receiver (``bench/receiver.py``);
* ``delivery``: ``bench/deliver.py`` in a child process (its own Redis and store), whose
  baseline is a plain keep-alive POST loop;
* ``inflight``: a second ``genhook up`` with 60 s renders: Runway jobs (polled, no callbacks)
  are submitted until each ``--checkpoints`` count is in flight, status reads are measured
  there (p99, twice: ``wrk -c32`` as in ``status``, which saturates the API, and 4 steady
  readers, the latency a polling client sees), and once every webhook has arrived,
  provider status calls and worker CPU seconds per job are counted (simulator
  ``/_sim/stats``, ``/proc``); then the same for Kling jobs, which the provider calls back.

Limits are raised out of reach (``bench/limits.py``, ``genhook accounts set-limits``) so that
the bench measures throughput, not the limiter. Ports come from 8400-8499; scratch
directories are ``/tmp/bench-run-*`` (removed after a good run).

    .venv/bin/python -m bench.run --quick                       # minutes: to try it
    .venv/bin/python -m bench.run --runs 3 --markdown table.md  # the figures for the docs
    .venv/bin/python -m bench.run --only submit,status --database-url \\
        postgresql://postgres@127.0.0.1:5432/h_bench           # a database it may drop

Exit status: 0 when every figure was measured and every job and webhook was accounted for.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as ``python bench/run.py``: Python put bench/ on the path, not the repository.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from backend.settings import Settings
from bench import figures, wrk
from bench.figures import Api
from bench.genhook_up import UpStack, create_account, log_warnings, running_up
from bench.machine import describe_machine
from bench.receiver import Receiver
from bench.stack import hide_password
from bench.table import Row, at_least, at_most, below, markdown, text

FIGURES = ("submit", "status", "lifecycle", "delivery", "inflight")
CREDITS = 1_000_000_000
BENCH_EMAIL = "bench@example.com"
IN_FLIGHT_LIMIT = 10_000_000
#: Connections reading statuses in a loop at each in-flight checkpoint, beside the
#: saturating ``-c32``: clients polling their jobs, not a load test of the API.
STEADY_READERS = 4
#: Jobs whose statuses are read (the newest ones).
STATUS_JOBS = 1000


@dataclass(frozen=True)
class Plan:
    runs: int
    only: tuple[str, ...]
    quick: bool
    connections: int
    seconds: float
    render_seconds: float
    lifecycle_jobs: int
    deliveries: int
    checkpoints: list[int]
    checkpoint_seconds: float
    inflight_render_seconds: float
    inflight_max_seconds: float
    callback_jobs: int
    database_url: str | None
    ceiling_worker_class: str
    extra_env: dict[str, str]
    markdown: Path | None
    keep: bool
    argv: tuple[str, ...]


def parse_args(argv: Sequence[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="times each figure is taken")
    parser.add_argument(
        "--only", default=",".join(FIGURES), help=f"comma-separated, of {','.join(FIGURES)}"
    )
    parser.add_argument("--quick", action="store_true", help="short runs and small counts")
    parser.add_argument("--connections", type=int, default=32, help="wrk -c")
    parser.add_argument("--seconds", type=float, help="wrk -d (default 15, quick 4)")
    parser.add_argument(
        "--render-seconds", type=float, default=0.0, help="renders of submit/status/lifecycle"
    )
    parser.add_argument("--lifecycle-jobs", type=int, help="default 3000, quick 300")
    parser.add_argument("--deliveries", type=int, help="bench/deliver.py --count (2000; 300)")
    parser.add_argument(
        "--checkpoints", help="jobs in flight to read statuses at (1000,2500,5000,10000; 200,500)"
    )
    parser.add_argument("--checkpoint-seconds", type=float, help="wrk -d there (10; 3)")
    parser.add_argument("--inflight-render-seconds", type=float, default=60.0)
    parser.add_argument(
        "--inflight-max-seconds", type=float, default=900.0, help="to build up the checkpoints"
    )
    parser.add_argument("--callback-jobs", type=int, help="Kling jobs (default 1000, quick 100)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL database the bench may DROP and create (default: SQLite)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="GENHOOK_NAME=VALUE",
        help="a setting for every genhook up (repeatable)",
    )
    parser.add_argument(
        "--ceiling-worker-class",
        choices=("gthread", "sync"),
        default="gthread",
        help="gunicorn worker class of the bare Falcon app (gthread: keep-alive, threads)",
    )
    parser.add_argument("--markdown", type=Path, help="write the table and its context here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    argv = tuple(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    only = tuple(name.strip() for name in args.only.split(",") if name.strip())
    unknown = set(only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    extra = dict(item.split("=", 1) for item in args.set)
    if any(not name.startswith("GENHOOK_") for name in extra):
        parser.error("--set takes GENHOOK_NAME=VALUE")
    quick = args.quick

    def pick(value: float | None, full: float, short: float) -> float:
        return value if value is not None else (short if quick else full)

    checkpoints = args.checkpoints or ("200,500" if quick else "1000,2500,5000,10000")
    return Plan(
        runs=max(1, args.runs),
        only=only,
        quick=quick,
        connections=args.connections,
        seconds=pick(args.seconds, 15, 4),
        render_seconds=args.render_seconds,
        lifecycle_jobs=int(pick(args.lifecycle_jobs, 3000, 300)),
        deliveries=int(pick(args.deliveries, 2000, 300)),
        checkpoints=sorted(int(c) for c in checkpoints.split(",")),
        checkpoint_seconds=pick(args.checkpoint_seconds, 10, 3),
        inflight_render_seconds=args.inflight_render_seconds,
        inflight_max_seconds=args.inflight_max_seconds,
        callback_jobs=int(pick(args.callback_jobs, 1000, 100)),
        database_url=args.database_url,
        ceiling_worker_class=args.ceiling_worker_class,
        extra_env=extra,
        markdown=args.markdown,
        keep=args.keep,
        argv=argv,
    )


# -- rows -------------------------------------------------------------------------------------


def rate_rows(key: str, figure: str, method: str, share: float) -> dict[str, Row]:
    """A rate and its target as a share of the keep-alive ceiling (``key``), and the same
    against the sync ceiling (``key_vs_sync``)."""
    return {
        key: Row(
            figure,
            "req/s",
            at_least(share, f"≥ {share:.2f}x bare {method}", on_ratio=True),
            ceiling_name=f"bare {method}",
        ),
        f"{key}_vs_sync": Row(
            f"{figure}, to the sync ceiling",
            "req/s",
            at_least(share, f"≥ {share:.2f}x sync {method}", on_ratio=True),
            ceiling_name=f"sync {method}",
        ),
    }


def make_rows(checkpoints: Sequence[int]) -> dict[str, Row]:
    """Every row of the table, in order; those of the in-flight checkpoints included."""
    at_checkpoints = {
        f"inflight_p99_{n}": Row(
            f"GET p99 with ~{n:,} in flight, wrk -c32", "ms", below(50, "< 50 ms"), digits=1
        )
        for n in checkpoints
    }
    steady_at_checkpoints = {
        f"inflight_steady_p99_{n}": Row(
            f"GET p99 with ~{n:,} in flight, {STEADY_READERS} steady readers",
            "ms",
            below(50, "< 50 ms"),
            digits=1,
        )
        for n in checkpoints
    }
    return {
        "hello_get": Row("bare Falcon GET, wrk -c32", "req/s"),
        "hello_post": Row("bare Falcon POST, wrk -c32", "req/s"),
        "sync_get": Row("bare Falcon GET, gunicorn sync (Connection: close)", "req/s"),
        "sync_post": Row("bare Falcon POST, gunicorn sync (Connection: close)", "req/s"),
        **rate_rows("submit", "POST /v1/video/generations", "POST", 0.30),
        "submit_p50": Row("POST p50", "ms", digits=1),
        "submit_p99": Row("POST p99", "ms", at_most(50, "≤ 50 ms"), digits=1),
        "submit_cpu": Row("API CPU per POST", "ms", digits=2, ceiling_name="bare"),
        **rate_rows("status", "GET /v1/video/generations/{id}", "GET", 0.60),
        "status_p99": Row("GET p99", "ms", digits=1),
        "status_cpu": Row("API CPU per GET", "ms", digits=2, ceiling_name="bare"),
        "lifecycle": Row(
            "lifecycles, instant renders (submit → webhook)", "jobs/s", at_least(500, "≥ 500/s")
        ),
        "lifecycle_cpu": Row("worker CPU per lifecycle", "ms", digits=2),
        "delivery": Row(
            "webhook delivery (bench/deliver.py)",
            "deliveries/s",
            at_least(0.5, "≥ 0.5x POST loop", on_ratio=True),
            ceiling_name="POST loop",
        ),
        "inflight": Row(
            "jobs in flight, status p99 < 50 ms at wrk -c32 (60 s renders)",
            "jobs",
            at_least(10_000, "10,000"),
        ),
        "inflight_steady": Row(
            f"jobs in flight, status p99 < 50 ms for {STEADY_READERS} steady readers",
            "jobs",
            at_least(10_000, "10,000"),
        ),
        **at_checkpoints,
        **steady_at_checkpoints,
        "polls_off": Row(
            "provider status calls per job, no callbacks (Runway)",
            "",
            below(20, "< 20"),
            digits=2,
        ),
        "polls_on": Row(
            "provider status calls per job, callbacks (Kling)", "", below(5, "< 5"), digits=2
        ),
        "cpu_off": Row("worker CPU per job, no callbacks", "ms", digits=1),
        "cpu_on": Row("worker CPU per job, callbacks", "ms", digits=1),
    }


# -- one run ----------------------------------------------------------------------------------


class Runner:
    """Takes the figures of one run after another into the same rows."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rows = make_rows(plan.checkpoints)
        self.ports: set[int] = set()
        self.problems: list[str] = []
        #: The bare app under gunicorn's sync worker, this run's (see ``ceilings``).
        self.sync: figures.Ceiling | None = None
        defaults = Settings.model_fields
        self.api_workers = int(
            plan.extra_env.get("GENHOOK_API_WORKERS", defaults["api_workers"].default)
        )
        self.api_threads = int(
            plan.extra_env.get("GENHOOK_API_THREADS", defaults["api_threads"].default)
        )

    def wants(self, *names: str) -> bool:
        return any(name in self.plan.only for name in names)

    def run(self, number: int) -> None:
        work = Path(tempfile.mkdtemp(prefix=f"bench-run-{number}-"))
        self.ports.clear()  # the last run's servers are gone
        say(f"run {number}", f"scratch {work}")
        hello = self.ceilings(work) if self.wants("submit", "status") else None
        if self.wants("submit", "status", "lifecycle"):
            self.stack_figures(work, number, hello)
        if self.wants("delivery"):
            self.delivery()
        if self.wants("inflight"):
            self.in_flight(work)
        if not self.plan.keep and not self.problems:
            shutil.rmtree(work, ignore_errors=True)

    def ceilings(self, work: Path) -> figures.Ceiling:
        port = figures.free_port(self.ports)
        with figures.running_hello(
            port,
            workers=self.api_workers,
            threads=self.api_threads,
            worker_class=self.plan.ceiling_worker_class,
        ) as app:
            hello = figures.measure_hello(
                app, work, connections=self.plan.connections, seconds=self.plan.seconds
            )
        self.rows["hello_get"].add(hello.get.rate)
        self.rows["hello_post"].add(hello.post.rate)
        say("ceiling", f"bare Falcon GET: {describe(hello.get)}")
        say("", f"bare Falcon POST: {describe(hello.post)}")
        # The issue's own ratios were taken against gunicorn's default sync worker (a new
        # connection per request, ~5,000/s here): measured too, so both ratios are given.
        port = figures.free_port(self.ports)
        with figures.running_hello(
            port, workers=self.api_workers, threads=1, worker_class="sync"
        ) as app:
            self.sync = figures.measure_hello(
                app, work, connections=self.plan.connections, seconds=self.plan.seconds
            )
        self.rows["sync_get"].add(self.sync.get.rate)
        self.rows["sync_post"].add(self.sync.post.rate)
        say("", f"bare Falcon GET, sync: {describe(self.sync.get)}")
        say("", f"bare Falcon POST, sync: {describe(self.sync.post)}")
        return hello

    def up(self, work: Path, name: str, render_seconds: float) -> AbstractContextManager[UpStack]:
        reset_database(self.plan.database_url)
        extra = dict(self.plan.extra_env)
        if self.plan.database_url:
            extra["GENHOOK_DATABASE_URL"] = self.plan.database_url
        stack_dir = work / name
        stack_dir.mkdir()
        return running_up(
            stack_dir,
            port=figures.free_port(self.ports),
            simulator_port=figures.free_port(self.ports),
            render_seconds=render_seconds,
            extra_env=extra,
        )

    def account(self, stack: UpStack) -> Api:
        key = create_account(stack, BENCH_EMAIL, CREDITS, allow_private_webhooks=True)
        stack.genhook(
            "accounts", "set-limits", "--email", BENCH_EMAIL,
            "--max-jobs-in-flight", str(IN_FLIGHT_LIMIT),
        )  # fmt: skip
        return Api(stack, key)

    def stack_figures(self, work: Path, number: int, hello: figures.Ceiling | None) -> None:
        plan = self.plan
        with self.up(work, "stack", plan.render_seconds) as stack, Receiver() as receiver:
            api = self.account(stack)
            try:
                if self.wants("submit"):
                    assert hello is not None
                    result = figures.measure_submit(
                        api, work, connections=plan.connections, seconds=plan.seconds
                    )
                    self.check(result.result, "submit")
                    self.rows["submit"].add(result.rate, hello.post.rate)
                    assert self.sync is not None
                    self.rows["submit_vs_sync"].add(result.rate, self.sync.post.rate)
                    self.rows["submit_p50"].add(result.result.p50_ms)
                    self.rows["submit_p99"].add(result.result.p99_ms)
                    self.rows["submit_cpu"].add(result.cpu_ms("api"), hello.post.cpu_ms("api"))
                    say("submit", describe(result))
                    drained = api.wait_until_idle(600)
                    say("", f"backlog done in {drained:.1f} s")
                if self.wants("status"):
                    assert hello is not None
                    if not self.wants("submit"):  # jobs to read: some submissions first
                        figures.seed_jobs(api, work, STATUS_JOBS, connections=plan.connections)
                        api.wait_until_idle(600)
                    ids = api.job_ids(None, STATUS_JOBS)
                    result = figures.measure_status(
                        api, work, ids, connections=plan.connections, seconds=plan.seconds
                    )
                    self.check(result.result, "status")
                    self.rows["status"].add(result.rate, hello.get.rate)
                    assert self.sync is not None
                    self.rows["status_vs_sync"].add(result.rate, self.sync.get.rate)
                    self.rows["status_p99"].add(result.result.p99_ms)
                    self.rows["status_cpu"].add(result.cpu_ms("api"), hello.get.cpu_ms("api"))
                    say("status", f"over {len(ids)} jobs: {describe(result)}")
                if self.wants("lifecycle"):
                    done = figures.measure_lifecycles(
                        api, receiver, work, str(number),
                        jobs=plan.lifecycle_jobs, connections=plan.connections,
                    )  # fmt: skip
                    self.rows["lifecycle"].add(done.rate)
                    cpu_ms = 1000 * done.worker_cpu / done.jobs if done.jobs else float("nan")
                    self.rows["lifecycle_cpu"].add(cpu_ms)
                    say(
                        "lifecycle",
                        f"{done.jobs} jobs charged, {done.received} webhooks "
                        f"({done.distinct} distinct ids) in {done.seconds:.2f} s: "
                        f"{done.rate:,.1f} jobs/s; submissions {describe(done.submit)}; CPU s: "
                        + ", ".join(f"{role} {cpu:.2f}" for role, cpu in done.cpu.items()),
                    )
                    if not done.received == done.distinct == done.jobs:
                        self.problems.append(f"lifecycle: {done}")
            finally:
                api.close()
                self.note_warnings(stack.work_dir)

    def delivery(self) -> None:
        result = figures.measure_delivery(self.plan.deliveries, self.plan.database_url)
        self.rows["delivery"].add(result.rate, result.baseline)
        say(
            "delivery",
            f"{result.rate:,.1f} deliveries/s, plain POST loop {result.baseline:,.1f}/s, "
            f"ratio {result.ratio:.3f} ({self.plan.deliveries} webhooks)",
        )
        if not result.ok:
            self.problems.append("delivery: bench/deliver.py reported a failure")
            print(result.output)

    def in_flight(self, work: Path) -> None:
        plan = self.plan
        with (
            self.up(work, "inflight", plan.inflight_render_seconds) as stack,
            Receiver() as receiver,
        ):
            api = self.account(stack)
            try:
                checkpoints, polled = figures.build_in_flight(
                    api, receiver, work,
                    checkpoints=plan.checkpoints, connections=plan.connections,
                    readers=STEADY_READERS, status_seconds=plan.checkpoint_seconds,
                    max_seconds=plan.inflight_max_seconds,
                    render_seconds=plan.inflight_render_seconds, log=lambda t: say("", t),
                )  # fmt: skip
                reached = figures.InFlight(checkpoints, polled, None)
                self.rows["inflight"].add(reached.largest_under_limit)
                self.rows["inflight_steady"].add(reached.largest_under_limit_steady)
                for checkpoint in checkpoints:
                    p99 = checkpoint.status.p99_ms if checkpoint.status else float("nan")
                    self.rows[f"inflight_p99_{checkpoint.target}"].add(p99)
                    p99 = checkpoint.steady.p99_ms if checkpoint.steady else float("nan")
                    self.rows[f"inflight_steady_p99_{checkpoint.target}"].add(p99)
                self.per_job("off", polled)
                on = figures.measure_callbacks(
                    api, receiver, work, jobs=plan.callback_jobs,
                    connections=plan.connections, render_seconds=plan.inflight_render_seconds,
                )  # fmt: skip
                self.per_job("on", on)
            finally:
                api.close()
                self.note_warnings(stack.work_dir)

    def per_job(self, mode: str, figures_: figures.PerJob) -> None:
        self.rows[f"polls_{mode}"].add(figures_.polls_per_job)
        self.rows[f"cpu_{mode}"].add(1000 * figures_.cpu_per_job)
        say(
            "inflight",
            f"{figures_.model}: {figures_.jobs} jobs, {figures_.polls} status calls, "
            f"{figures_.submits} submits, {figures_.seconds:.0f} s from first submit to last "
            "webhook; CPU s: "
            + ", ".join(f"{role} {cpu:.2f}" for role, cpu in figures_.cpu.items()),
        )

    def check(self, result: wrk.WrkResult, name: str) -> None:
        if result.non_2xx or result.socket_errors:
            self.problems.append(
                f"{name}: {result.non_2xx} non-2xx answers, {result.socket_errors} socket errors"
            )

    def note_warnings(self, work_dir: Path) -> None:
        lines = log_warnings(work_dir)
        if lines:
            say("", f"{len(lines)} WARNING/ERROR lines in {work_dir}/up.log; first: {lines[0]}")


def reset_database(url: str | None) -> None:
    """An empty PostgreSQL database for the next ``genhook up`` (nothing for SQLite: each
    stack has its own file)."""
    if not url:
        return
    target = sa.make_url(url)
    if not target.drivername.startswith("postgresql"):
        raise SystemExit("--database-url: PostgreSQL only (SQLite is the default)")
    engine = sa.create_engine(
        target.set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with engine.connect() as conn:
            name = conn.dialect.identifier_preparer.quote(str(target.database))
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()


def describe(load: figures.Load | wrk.WrkResult) -> str:
    """A wrk run in one line, with the CPU its server used when measured."""
    result = load.result if isinstance(load, figures.Load) else load
    cpu = ""
    if isinstance(load, figures.Load):
        cpu = "; CPU s: " + ", ".join(f"{r} {s:.2f}" for r, s in load.cpu.items() if s >= 0.01)
    extra = ""
    if result.non_2xx or result.socket_errors:
        extra = f", {result.non_2xx} non-2xx, {result.socket_errors} socket errors"
    return (
        f"{result.rate:,.1f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms "
        f"({result.requests} answers in {result.seconds:.1f} s{extra}){cpu}"
    )


def say(label: str, line: str) -> None:
    print(f"{label:<12}{line}", flush=True)


def command_line(plan: Plan) -> str:
    hidden = {plan.database_url: hide_password(plan.database_url)} if plan.database_url else {}
    return shlex.join(["python", "-m", "bench.run", *(hidden.get(a, a) for a in plan.argv)])


def context_lines(plan: Plan, runner: Runner) -> list[tuple[str, str]]:
    database = hide_password(plan.database_url) if plan.database_url else "SQLite (per stack)"
    return [
        ("command", command_line(plan)),
        *describe_machine(),
        ("load", f"{wrk.version()}, -t{wrk.THREADS} -c{plan.connections} -d{plan.seconds:g}s"),
        ("database", database),
        (
            "ceiling",
            f"bench/hello.py under gunicorn {plan.ceiling_worker_class}, "
            f"{runner.api_workers} workers x {runner.api_threads} threads"
            + (
                f", keep-alive {figures.HELLO_KEEPALIVE_SECONDS} s"
                if plan.ceiling_worker_class == "gthread"
                else ""
            )
            + " (genhook's API: as many workers and threads)",
        ),
        ("settings", ", ".join(f"{k}={v}" for k, v in plan.extra_env.items()) or "defaults"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    if not wrk.available():
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    runner = Runner(plan)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    print(f"genhook benchmarks (issue 12), {started}" + (" — QUICK mode" if plan.quick else ""))
    context = context_lines(plan, runner)
    for label, line in context:
        say(label, line)
    for number in range(1, plan.runs + 1):
        runner.run(number)
    rows = [row for row in runner.rows.values() if row.values]
    print()
    print(text(rows))
    if runner.problems:
        print("\nPROBLEMS:\n" + "\n".join(f"- {p}" for p in runner.problems))
    if plan.markdown:
        heading = f"Measured {started}, {plan.runs} run(s)" + (", quick mode" if plan.quick else "")
        details = "\n".join(f"- {label}: {line}" for label, line in context)
        plan.markdown.write_text(f"{heading}\n\n{details}\n\n{markdown(rows)}\n")
        say("markdown", str(plan.markdown))
    return 1 if runner.problems else 0


if __name__ == "__main__":
    sys.exit(main())
