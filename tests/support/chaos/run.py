"""One chaos run from start to end: the stack, the receiver, the load, the faults, the
wait for recovery and the checks; everything stopped and removed afterwards."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from tests.support.chaos.checks import check, wait_for_recovery
from tests.support.chaos.load import LoadGenerator
from tests.support.chaos.plan import Fault, Window, play
from tests.support.chaos.receiver import ChaosReceiver
from tests.support.chaos.report import Report
from tests.support.chaos.stack import ChaosStack
from tests.support.faults import CONTROL_HEADERS


@dataclass(frozen=True)
class ChaosConfig:
    #: Any database on the PostgreSQL server to use; the run creates its own beside it.
    admin_database_url: str
    jobs: int
    #: Submissions per second.
    rate: float
    render_seconds: float
    plan: list[Fault]
    seed: int = 0
    #: Every terminal job and webhook must be in within this long after the last fault.
    deadline_seconds: float = 60.0
    #: How long to keep watching after the last fault (at least the deadline), to measure
    #: a recovery slower than the deadline.
    watch_seconds: float = 60.0
    #: Share of renders the simulator fails (content policy: no failover, a refund).
    failing_share: float = 0.1
    accounts: int = 3
    get_rate: float = 10.0
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Where the processes' logs and Redis's data go, kept afterwards; None: a temporary
    #: directory, removed.
    work_dir: Path | None = None


@dataclass(frozen=True, repr=False)
class Outcome:
    report: Report
    windows: list[Window]
    #: Seconds from the start of the load to the last answered submission.
    submit_seconds: float
    setup: list[tuple[str, str]]

    def __repr__(self) -> str:
        return f"<Outcome: {len(self.windows)} faults, {self.report!r}>"


def run_chaos(config: ChaosConfig, log: Callable[[str], None] = lambda line: None) -> Outcome:
    receiver = ChaosReceiver()
    stack = ChaosStack(
        admin_database_url=config.admin_database_url,
        render_seconds=config.render_seconds,
        extra_env=config.extra_env,
        work_dir=config.work_dir,
    )
    load: LoadGenerator | None = None
    try:
        stack.start()
        credits = 10 * config.jobs + 100
        accounts = [
            stack.create_account(f"chaos{n}@example.com", credits) for n in range(config.accounts)
        ]
        receiver.start()
        log(f"stack up in {stack.work_dir} (database {stack.database_name})")
        load = LoadGenerator(
            api_url=stack.api_url,
            accounts=accounts,
            webhook_url=receiver.url,
            jobs=config.jobs,
            rate=config.rate,
            seed=config.seed,
            get_rate=config.get_rate,
        )
        span = config.jobs / config.rate
        spoiler = _spoil_renders(
            stack.simulator_url, round(config.failing_share * config.jobs), span
        )
        load.start()
        windows = play(config.plan, stack, receiver, load.started_at, log)
        load.wait_submitted(timeout=load.give_up_seconds + span)
        submitted = max((a.at for a in load.answers() if a.kind == "submit"), default=0.0)
        spoiler.join()
        last_end = max([w.end for w in windows] + [submitted])
        log(f"last fault over at t={last_end - load.started_at:.1f}s; waiting for recovery")
        recovery = wait_for_recovery(
            stack.engine_or_fail(), receiver.posts, last_end,
            max(config.watch_seconds, config.deadline_seconds), log,
        )  # fmt: skip
        load.stop()
        report = check(
            engine=stack.engine_or_fail(),
            api_url=stack.api_url,
            accounts_used=accounts,
            load=load,
            posts=receiver.posts(),
            windows=windows,
            recovery=recovery,
            deadline_seconds=config.deadline_seconds,
        )
        if config.work_dir is not None:
            _save_records(config.work_dir, load, receiver, windows)
        setup = [
            ("processes", "redis-server (AOF), PostgreSQL database, simulator, genhook api "
                          "(gunicorn, 2 workers), genhook worker (1 process, 8 threads), "
                          "genhook scheduler"),
            ("renders", f"{config.render_seconds:g}s, {config.failing_share:.0%} failed by the "
                        f"simulator (content policy)"),
            ("load", f"{config.jobs} jobs at {config.rate:g}/s over {config.accounts} accounts, "
                     f"GETs at {config.get_rate:g}/s"),
        ]  # fmt: skip
        return Outcome(report, windows, submitted - load.started_at, setup)
    finally:
        if load is not None:
            load.stop()
        receiver.close()
        stack.close()


def _spoil_renders(simulator_url: str, count: int, span: float) -> threading.Thread:
    """Have the simulator fail ``count`` renders, spread over the submissions' span."""

    def run() -> None:
        started = time.monotonic()
        with httpx.Client(timeout=5, trust_env=False, headers=CONTROL_HEADERS) as client:
            for n in range(count):
                time.sleep(max(0.0, started + span * (n + 0.5) / count - time.monotonic()))
                client.post(
                    f"{simulator_url}/_sim/faults",
                    json={"on": "render", "kind": "content_policy", "dialect": "kling"},
                ).raise_for_status()

    thread = threading.Thread(target=run, name="chaos-spoil", daemon=True)
    thread.start()
    return thread


def _save_records(
    directory: Path, load: LoadGenerator, receiver: ChaosReceiver, windows: list[Window]
) -> None:
    """Every answer, webhook POST and fault window as JSON lines (times in seconds from
    the start of the load), for reading after a kept run."""
    zero = load.started_at
    with (directory / "answers.jsonl").open("w") as out:
        for answer in load.answers():
            out.write(json.dumps({**asdict(answer), "at": round(answer.at - zero, 3)}) + "\n")
    with (directory / "posts.jsonl").open("w") as out:
        for post in receiver.posts():
            out.write(json.dumps({**asdict(post), "at": round(post.at - zero, 3)}) + "\n")
    with (directory / "faults.jsonl").open("w") as out:
        for w in windows:
            row = {**asdict(w), "start": round(w.start - zero, 3), "end": round(w.end - zero, 3)}
            out.write(json.dumps(row) + "\n")
