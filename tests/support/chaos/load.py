"""The clients of a chaos run: paced submissions and a stream of GETs, every answer kept.

Each submission carries an ``Idempotency-Key`` (also written in the job's metadata as
``chaos_key``, so the jobs made for one key can be counted from the database whether or not
genhook honours the header). A submission that gets no answer (the API was killed, a
connection refused or cut, a timeout) or a 5xx is sent again, same key and same body, after
a short backoff (a 503's ``Retry-After`` is honoured up to a few seconds), until it gets a
2xx or a 4xx or ``give_up_seconds`` pass. Meanwhile GETs of accepted jobs go out at a steady
rate. Every answer (status or error, with its time) is recorded for the checks.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.chaos.stack import Account

GENERATIONS = "/v1/video/generations"
#: Backoff between two tries of one submission, doubled from the first to the last.
RETRY_FIRST_SECONDS = 0.25
RETRY_MAX_SECONDS = 2.0
#: The longest ``Retry-After`` the clients wait for.
RETRY_AFTER_CAP_SECONDS = 5.0


@dataclass(frozen=True)
class Answer:
    """One request and what came back: a status, or the error that stood for none."""

    #: ``time.monotonic()`` when the answer (or the error) came.
    at: float
    kind: str  # "submit" or "get"
    status: int | None
    error: str | None
    key: str | None = None
    job_id: str | None = None
    replayed: bool = False
    #: The job's status in the answer's body (GETs), and the wall clock when it came, to
    #: hold against the transition times the database recorded.
    shown: str | None = None
    wall: float = 0.0


@dataclass
class Submission:
    """One job the client wants, under one idempotency key, however many tries it takes."""

    index: int
    key: str
    account: Account
    body: dict[str, Any]
    #: Job ids the API answered with, one per 2xx (more than one distinct: a double).
    job_ids: list[str] = field(default_factory=list)
    tries: int = 0
    final_status: int | None = None
    done: bool = False


class LoadGenerator:
    """Threads that submit ``jobs`` jobs at ``rate`` per second, round-robin over the
    accounts, and GET accepted jobs at ``get_rate`` per second until stopped."""

    def __init__(
        self,
        *,
        api_url: str,
        accounts: list[Account],
        webhook_url: str,
        jobs: int,
        rate: float,
        seed: int,
        model: str = "kling-v3",
        threads: int = 8,
        get_rate: float = 10.0,
        give_up_seconds: float = 120.0,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.api_url = api_url
        self.rate = rate
        self.get_rate = get_rate
        self.give_up_seconds = give_up_seconds
        self.timeout_seconds = timeout_seconds
        self._threads_wanted = threads
        self._rng = random.Random(seed)
        self.submissions = [
            Submission(
                index=i,
                key=f"chaos-{seed}-{i:06d}-{self._rng.getrandbits(48):012x}",
                account=accounts[i % len(accounts)],
                body={},
            )
            for i in range(jobs)
        ]
        for sub in self.submissions:
            sub.body = {
                "model": model,
                "prompt": f"Chaos run job {sub.index}",
                "duration": "5s",
                "webhook_url": f"{webhook_url}/hooks/{accounts.index(sub.account)}",
                "metadata": {"chaos_key": sub.key},
            }
        self._answers: list[Answer] = []
        self._accepted: list[tuple[str, Account]] = []
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0

    # -- control --------------------------------------------------------------------------

    def start(self) -> None:
        self.started_at = time.monotonic()
        for n in range(self._threads_wanted):
            self._spawn(self._submit_loop, f"chaos-submit-{n}")
        self._spawn(self._get_loop, "chaos-get")

    def wait_submitted(self, timeout: float) -> bool:
        """Whether every submission ended (accepted, refused or given up) in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(sub.done for sub in self.submissions):
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout_seconds + 1)

    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self._answers.append(answer)

    # -- submissions ----------------------------------------------------------------------

    def _take(self) -> Submission | None:
        with self._lock:
            if self._next >= len(self.submissions):
                return None
            sub = self.submissions[self._next]
            self._next += 1
        return sub

    def _submit_loop(self) -> None:
        with httpx.Client(timeout=self.timeout_seconds, trust_env=False) as client:
            while not self._stop.is_set() and (sub := self._take()) is not None:
                due = self.started_at + sub.index / self.rate
                self._stop.wait(max(0.0, due - time.monotonic()))
                self._submit(client, sub)

    def _submit(self, client: httpx.Client, sub: Submission) -> None:
        first = time.monotonic()
        delay = RETRY_FIRST_SECONDS
        headers = {**sub.account.headers, "Idempotency-Key": sub.key}
        while not self._stop.is_set():
            sub.tries += 1
            wait = delay
            try:
                response = client.post(self.api_url + GENERATIONS, json=sub.body, headers=headers)
            except httpx.TransportError as exc:
                self._record(Answer(time.monotonic(), "submit", None, type(exc).__name__, sub.key))
            else:
                job_id = _job_id(response) if response.is_success else None
                replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
                self._record(
                    Answer(time.monotonic(), "submit", response.status_code, None, sub.key, job_id,
                           replayed)
                )  # fmt: skip
                if response.status_code < 500:
                    self._finish(sub, response.status_code, job_id)
                    return
                wait = max(delay, _retry_after(response))
            if time.monotonic() - first > self.give_up_seconds:
                break
            self._stop.wait(wait)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
        sub.done = True

    def _finish(self, sub: Submission, status: int, job_id: str | None) -> None:
        sub.final_status = status
        if job_id is not None:
            sub.job_ids.append(job_id)
            with self._lock:
                self._accepted.append((job_id, sub.account))
        sub.done = True

    # -- reads ----------------------------------------------------------------------------

    def _get_loop(self) -> None:
        with httpx.Client(timeout=self.timeout_seconds, trust_env=False) as client:
            while not self._stop.wait(1.0 / self.get_rate):
                with self._lock:
                    if not self._accepted:
                        continue
                    job_id, account = self._rng.choice(self._accepted)
                try:
                    response = client.get(
                        f"{self.api_url}{GENERATIONS}/{job_id}", headers=account.headers
                    )
                except httpx.TransportError as exc:
                    self._record(
                        Answer(time.monotonic(), "get", None, type(exc).__name__, None, job_id)
                    )
                else:
                    shown = _status(response) if response.status_code == 200 else None
                    self._record(
                        Answer(time.monotonic(), "get", response.status_code, None, None, job_id,
                               shown=shown, wall=time.time())
                    )  # fmt: skip


def _job_id(response: httpx.Response) -> str | None:
    try:
        value = response.json().get("id")
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _status(response: httpx.Response) -> str | None:
    try:
        value = response.json().get("status")
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(RETRY_AFTER_CAP_SECONDS, float(response.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0
