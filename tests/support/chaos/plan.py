"""Fault plans and the runner that plays one against a stack and a receiver.

A plan is a list of :class:`Fault`: what is done, when (seconds after the run starts) and,
for an outage, for how long before the process is started again. :func:`issue_plan` is the
sequence of issue 10 at fixed times; :func:`random_plan` the same faults at random times
over a span, never two on one process at once. :func:`play` carries a plan out and returns
each fault's :class:`Window` (when it began, when its victim was back), the yardstick of
the checks.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.support.chaos.receiver import ChaosReceiver
from tests.support.chaos.stack import ChaosStack

#: Seconds a killed process stays dead before it is started again (a supervisor's delay).
WORKER_DOWN_SECONDS = 1.0
REDIS_DOWN_SECONDS = 2.0
API_DOWN_SECONDS = 2.0
RECEIVER_DOWN_SECONDS = 40.0


@dataclass(frozen=True)
class Fault:
    kind: str
    at: float
    #: Seconds until the victim is started again; 0 for an instant fault.
    down: float = 0.0


@dataclass(frozen=True)
class Window:
    """When a fault began and when its victim was back (equal for an instant fault)."""

    kind: str
    start: float
    end: float
    note: str = ""


#: kind -> what it does, what ends it, in words for reports.
KINDS = {
    "worker_kill": "kill -9 the worker's process group, start it again",
    "redis_flushall": "FLUSHALL",
    "redis_kill": "kill -9 redis-server, start it again on its port and data dir (AOF)",
    "db_terminate": "pg_terminate_backend every connection to the database",
    "api_kill": "kill -9 the API (gunicorn and its workers), start it again",
    "receiver_down": "stop the webhook receiver (connections refused), start it again",
}


def issue_plan() -> list[Fault]:
    """Issue 10's sequence: the worker killed twice, one FLUSHALL, Redis killed and
    restarted once, every database connection terminated once, the API killed once, the
    receiver down 40 s; spread over the first 25 s so each hits jobs at every step."""
    return [
        Fault("receiver_down", 4.0, RECEIVER_DOWN_SECONDS),
        Fault("worker_kill", 6.0, WORKER_DOWN_SECONDS),
        Fault("redis_flushall", 9.0),
        Fault("redis_kill", 12.0, REDIS_DOWN_SECONDS),
        Fault("db_terminate", 16.0),
        Fault("api_kill", 18.0, API_DOWN_SECONDS),
        Fault("worker_kill", 23.0, WORKER_DOWN_SECONDS),
    ]


#: kind -> the process it hits; two faults on one process never overlap in a random plan.
VICTIMS = {
    "worker_kill": "worker",
    "redis_flushall": "redis",
    "redis_kill": "redis",
    "db_terminate": "database",
    "api_kill": "api",
    "receiver_down": "receiver",
}
#: Seconds kept between two faults on one process in a random plan.
RANDOM_GAP_SECONDS = 3.0


def random_plan(rng: random.Random, span: float) -> list[Fault]:
    """The same faults, each at a random time within ``span`` seconds (the receiver's
    outage starting early enough to end within it when the span allows), never two on one
    process at once."""
    for _ in range(1000):
        plan = [Fault("receiver_down", rng.uniform(0, max(1.0, span - RECEIVER_DOWN_SECONDS)),
                      RECEIVER_DOWN_SECONDS)]  # fmt: skip
        for fault in issue_plan():
            if fault.kind != "receiver_down":
                plan.append(Fault(fault.kind, rng.uniform(0.05 * span, 0.95 * span), fault.down))
        if not _overlapping(plan):
            return sorted(plan, key=lambda fault: fault.at)
    raise ValueError(f"no random plan without overlapping faults fits in {span:g}s")


def _overlapping(plan: list[Fault]) -> bool:
    return any(
        a is not b
        and VICTIMS[a.kind] == VICTIMS[b.kind]
        and a.at <= b.at < a.at + a.down + RANDOM_GAP_SECONDS
        for a in plan
        for b in plan
    )


def play(
    plan: list[Fault],
    stack: ChaosStack,
    receiver: ChaosReceiver,
    started_at: float,
    log: Callable[[str], None] = lambda line: None,
) -> list[Window]:
    """Carry the plan out from ``started_at`` (a ``time.monotonic()``): each fault in a
    thread of its own, so a slow restart (the API takes seconds to answer again) delays
    no other fault. Returns when every victim is back."""
    begin, end = _actions(stack, receiver)
    windows: list[Window] = []
    lock = threading.Lock()

    def carry_out(fault: Fault) -> None:
        time.sleep(max(0.0, started_at + fault.at - time.monotonic()))
        start = time.monotonic()
        note = _attempt(begin[fault.kind])
        log(f"t={start - started_at:6.1f}s  {fault.kind} {note}".rstrip())
        if fault.down:
            time.sleep(max(0.0, start + fault.down - time.monotonic()))
            note = f"{note} {_attempt(end[fault.kind])}".strip()
        back = time.monotonic()
        if fault.down:
            log(f"t={back - started_at:6.1f}s  {fault.kind} over ({back - start:.1f}s)")
        with lock:
            windows.append(Window(fault.kind, start, back, note))

    threads = [
        threading.Thread(target=carry_out, args=(fault,), name=f"chaos-{fault.kind}", daemon=True)
        for fault in plan
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(windows, key=lambda w: w.start)


def _attempt(action: Callable[[], str | None]) -> str:
    """Run a fault action; a failure is noted, not raised, so the run goes on."""
    try:
        return action() or ""
    except Exception as exc:  # reported in the fault's window
        return f"(failed: {type(exc).__name__}: {exc})"


def _actions(
    stack: ChaosStack, receiver: ChaosReceiver
) -> tuple[dict[str, Callable[[], str | None]], dict[str, Callable[[], str | None]]]:
    def terminate() -> str:
        return f"({stack.terminate_database_connections()} connections)"

    begin: dict[str, Callable[[], str | None]] = {
        "worker_kill": lambda: stack.kill("worker"),
        "redis_flushall": stack.flush_redis,
        "redis_kill": lambda: stack.kill("redis"),
        "db_terminate": terminate,
        "api_kill": lambda: stack.kill("api"),
        "receiver_down": receiver.stop,
    }
    end: dict[str, Callable[[], str | None]] = {
        "worker_kill": lambda: stack.start_service("worker"),
        "redis_kill": lambda: stack.start_service("redis"),
        "api_kill": lambda: stack.start_service("api"),
        "receiver_down": receiver.start,
    }
    return begin, end
