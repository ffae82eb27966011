"""``genhook up``: run the whole stack on one machine, as supervised child processes.

    bundled redis-server (only without GENHOOK_REDIS_URL)
    simulator          gunicorn, one process (its renders live in memory)
    api                gunicorn
    worker (jobs)      dramatiq backend.actors --queues jobs      (submissions, polls)
    worker (webhooks)  dramatiq backend.actors --queues webhooks  (deliveries only)
    scheduler          genhook scheduler

A child that dies is restarted (and that is said). Ctrl-C or SIGTERM stops them all within
``STOP_BUDGET_SECONDS``, in stages, so no process loses a service it depends on while it
drains: first the API, the workers and the scheduler together (each finishes or hands back
its in-flight work within its own bound: README, Stopping), then the simulator they may
still be calling, then Redis, which the workers need to acknowledge or requeue its messages.
A stage's children still running at its deadline are killed, with their process groups.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from types import FrameType

import httpx

from backend.private_files import PRIVATE_UMASK

#: Ctrl-C or SIGTERM ends every process ``genhook up`` started within this long.
STOP_BUDGET_SECONDS = 20.0
#: Seconds after the stop began by which each stage must be over (``Child.stop_stage``
#: indexes it); the last leaves a margin for killing and reaping within the budget.
STAGE_DEADLINES_SECONDS = (17.0, 18.5, 19.5)
#: The stages: the application processes, the simulator, Redis.
APPS, SIMULATOR, REDIS = range(3)
#: How long the stack may take to answer ``/readyz``.
READY_TIMEOUT_SECONDS = 60.0
#: A child that keeps dying is restarted at most this often.
MIN_RESTART_INTERVAL_SECONDS = 2.0


@dataclass
class Child:
    name: str
    command: list[str]
    env: dict[str, str]
    stop_stage: int = APPS
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = field(default=0)

    def start(self) -> None:
        # umask 077: whatever the child creates (SQLite's files, Redis's, kept videos) is
        # its user's alone.
        self.process = subprocess.Popen(
            self.command, env=self.env, start_new_session=True, umask=PRIVATE_UMASK
        )
        self.started_at = time.monotonic()

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def reap_group(self) -> None:
        """Kill whatever is left of the child's process group: a forking child (Dramatiq,
        gunicorn) that died abruptly leaves its own children running otherwise."""
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGKILL)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # The leader only: gunicorn and Dramatiq pass the signal on to their own
            # processes, and Dramatiq reads a second SIGTERM as "kill, don't drain".
            self.process.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the child until ``deadline`` (monotonic), then kill what is left of it."""
        if self.process is None:
            return
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"genhook: {self.name} did not stop in time; killing it", flush=True)
        self.reap_group()
        self.process.wait()


class Supervisor:
    """Starts children in order, restarts the ones that die, stops them in reverse."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stopping = False

    def start_all(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        for child in self.children:
            child.start()

    def watch(self) -> None:
        """Block until a stop signal, restarting any child that exits meanwhile."""
        while not self.stopping:
            for child in self.children:
                code = child.exited()
                if code is None or self.stopping:
                    continue
                if time.monotonic() - child.started_at < MIN_RESTART_INTERVAL_SECONDS:
                    time.sleep(MIN_RESTART_INTERVAL_SECONDS)
                child.reap_group()
                child.restarts += 1
                print(
                    f"genhook: {child.name} exited with code {code}; restarting it "
                    f"(restart #{child.restarts})",
                    flush=True,
                )
                child.start()
            time.sleep(0.5)

    def stop_all(self) -> None:
        """Stop the children stage by stage, within ``STOP_BUDGET_SECONDS`` in all."""
        self.stopping = True
        began = time.monotonic()
        for stage, deadline in enumerate(STAGE_DEADLINES_SECONDS):
            group = [child for child in self.children if child.stop_stage == stage]
            for child in group:
                child.terminate()
            for child in group:
                child.wait_or_kill(began + deadline)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            print(f"\ngenhook: {signal.Signals(signum).name} received, stopping…", flush=True)
        self.stopping = True


def _signal_group(pgid: int, signum: int) -> None:
    """Each child leads its own process group (``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def child_env(overrides: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **overrides}


def wait_until_ready(base_url: str, supervisor: Supervisor) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not supervisor.stopping:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    if not supervisor.stopping:
        raise TimeoutError(f"the API at {base_url} was not ready within {READY_TIMEOUT_SECONDS}s")
