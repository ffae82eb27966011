"""Chaos benchmark: thousands of jobs through genhook's real processes while they are
killed, flushed and cut off at random times; what was lost, doubled or late, in numbers.

Why it exists: issue 10 promises that genhook loses no job, no credit and no webhook, and
is back within a minute, whatever dies when. ``tests/test_chaos.py`` checks that with 100
jobs and fixed fault times in the suite; this bench runs the same harness
(``tests/support/chaos/``) with ``--jobs`` jobs and the same faults at times drawn from
``--seed``, and prints every count the checks are made of, plus the recovery time measured
to the end (``--watch`` seconds at most), not only whether it met the deadline.

What one run does: start a redis-server (append-only, on a free port), a fresh PostgreSQL
database beside ``--database-url`` (named after it, dropped at the end), the simulator
(``--render-seconds`` renders, ``--failing-share`` of them failed for content policy), the
API (gunicorn), one worker and the scheduler with genhook's default settings, and a
webhook receiver in this process; submit ``--jobs`` jobs at ``--rate`` per second over
``--accounts`` accounts, each with an Idempotency-Key and retried with it after a
connection error or a 5xx, while GETs go out at 10 per second; meanwhile kill -9 the worker
twice, FLUSHALL Redis, kill -9 and restart Redis, terminate every database connection,
kill -9 the API and stop the receiver for 40 s, each at a random time within the
submissions' span. Then watch until every job is terminal and every terminal webhook in,
and check the books, the webhook-ids and every GET against the database.

    .venv/bin/python -m bench.chaos --jobs 3000 --seed 1 \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres

Only 127.0.0.1 is used. Every process the run starts is killed at the end (each leads its
own process group), its database dropped and its scratch directory removed (unless
``--keep DIR`` asks to keep the logs there), also on Ctrl-C or SIGTERM. Exit status: 0
when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import random
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

if __package__ in (None, ""):
    # Run as ``python bench/chaos.py``: Python put bench/ on the path, not the repository.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deliver import describe_machine
from bench.stack import hide_password
from tests.support.chaos.plan import KINDS, random_plan
from tests.support.chaos.run import ChaosConfig, Outcome, run_chaos

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: Columns of the markdown row printed at the end.
ROW = [
    "Jobs", "Seed", "Recovery", "Not terminal", "No webhook", "Repeated POSTs",
    "Jobs with 2+ webhook-ids", "Extra jobs (same key)", "5xx", "GETs != DB", "Ledger errors",
]  # fmt: skip


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000, help="jobs to submit")
    parser.add_argument("--seed", type=int, default=1, help="draws the fault times")
    parser.add_argument("--rate", type=float, default=10.0, help="submissions per second")
    parser.add_argument("--render-seconds", type=float, default=5.0)
    parser.add_argument("--failing-share", type=float, default=0.1)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="an existing database on the PostgreSQL server; the run creates its own "
        "(<name>_<random>) beside it and drops it at the end",
    )
    parser.add_argument(
        "--deadline", type=float, default=60.0, help="seconds after the last fault allowed"
    )
    parser.add_argument(
        "--watch",
        type=float,
        default=600.0,
        help="how long to keep watching after the last fault, to measure a slower recovery",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="keep the processes' logs, Redis's data, and every answer, webhook POST and "
        "fault window (JSON lines) in this new directory",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    span = args.jobs / args.rate
    plan = random_plan(random.Random(args.seed), span)
    print(f"genhook chaos benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    shown = [hide_password(a) if "://" in a else a for a in argv]
    say("command", shlex.join(["python", "-m", "bench.chaos", *shown]))
    for label, text in describe_machine():
        say(label, text)
    for fault in plan:
        down = f", back after {fault.down:g}s" if fault.down else ""
        say("fault", f"t={fault.at:6.1f}s  {fault.kind}: {KINDS[fault.kind]}{down}")
    started = time.monotonic()
    outcome = run_chaos(
        ChaosConfig(
            admin_database_url=args.database_url,
            jobs=args.jobs,
            rate=args.rate,
            render_seconds=args.render_seconds,
            plan=plan,
            seed=args.seed,
            deadline_seconds=args.deadline,
            watch_seconds=args.watch,
            failing_share=args.failing_share,
            accounts=args.accounts,
            work_dir=args.keep,
        ),
        log=lambda line: say("", line),
    )
    say("wall time", f"{time.monotonic() - started:.0f}s, the stack's start and end included")
    return report(outcome, args)


def report(outcome: Outcome, args: argparse.Namespace) -> int:
    for label, text in outcome.setup:
        say(label, text)
    say("submitting", f"{outcome.submit_seconds:.1f}s from the first to the last answer")
    for label, text in outcome.report.lines():
        say(label, text)
    r = outcome.report
    seconds = r.recovery.seconds
    say("markdown head", "| " + " | ".join(ROW) + " |")
    say(
        "markdown row",
        f"| {args.jobs:,} | {args.seed} | "
        f"{'>' + format(args.watch, 'g') if seconds is None else format(seconds, '.1f')} s "
        f"| {len(r.not_terminal)} | {len(r.terminal_without_webhook)} | {r.duplicate_posts} "
        f"| {len(r.jobs_with_several_webhook_ids)} | {r.extra_jobs} "
        f"| {len(r.server_errors)} | {len(r.get_mismatches)} "
        f"| {len(r.unbalanced_accounts) + len(r.debit_not_once) + len(r.refunded_twice)} |",
    )
    problems = r.problems()
    for problem in problems:
        say("FAILED", problem)
    if not problems:
        say("PASSED", "every check")
    return 1 if problems else 0


def say(label: str, text: str) -> None:
    print(f"{label:<40}{text}", flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the run's processes and database are cleaned up."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
