"""Locks that die with their holder: short TTLs renewed while the step runs, released
safely, and a busy lock retried with a growing delay rather than every half second."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field

import pytest
import redis

from backend import redis_keys
from backend.context import Context
from backend.jobs.deliver import deliver
from backend.jobs.poll import poll
from backend.jobs.submit import submit
from backend.locks import LOCK_BUSY_MAX_RETRY_SECONDS, busy_retry_delay, held
from tests.conftest import wait_until


def test_a_held_lock_outlives_its_ttl_while_the_step_runs(ctx: Context) -> None:
    key = "genhook:test:lock:renewed"
    with held(ctx.redis, key, ttl_seconds=0.6) as mine:
        assert mine
        time.sleep(1.5)  # two and a half TTLs
        with held(ctx.redis, key, ttl_seconds=0.6) as second:
            assert not second, "a second holder got a lock still in use"
        assert 0 < ctx.redis.pttl(key) <= 600
    assert ctx.redis.exists(key) == 0, "released at the end of the step"


def test_a_lock_taken_over_after_expiry_is_not_released_by_its_old_holder(
    ctx: Context,
) -> None:
    key = "genhook:test:lock:stolen"
    with held(ctx.redis, key, ttl_seconds=5) as mine:
        assert mine
        ctx.redis.set(key, "another holder's token")  # expired and taken meanwhile
    assert ctx.redis.get(key) == b"another holder's token"


_HOLDER = textwrap.dedent(
    """
    import sys, time
    import redis
    from backend.locks import held
    client = redis.Redis.from_url(sys.argv[1])
    with held(client, sys.argv[2], ttl_seconds=float(sys.argv[3])):
        print("held", flush=True)
        time.sleep(600)
    """
)


def test_a_lock_dies_with_a_holder_killed_by_sigkill(ctx: Context, redis_url: str) -> None:
    # Given a worker process holding a 1 s lock, renewing it for longer than that
    key = "genhook:test:lock:killed"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, redis_url, key, "1"],
        stdout=subprocess.PIPE,
        cwd=os.getcwd(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        time.sleep(2.0)
        assert ctx.redis.exists(key) == 1, "renewed while its holder lives"

        # When it is killed outright
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        killed_at = time.monotonic()

        # Then the lock is free within its TTL
        wait_until(lambda: ctx.redis.exists(key) == 0, timeout=3)
        assert time.monotonic() - killed_at <= 1.2
    finally:
        holder.kill()
        holder.wait(10)


def test_busy_retries_back_off_up_to_a_bound() -> None:
    delays = [busy_retry_delay(busy) for busy in range(10)]
    assert 0.4 <= delays[0] <= 0.6
    assert all(b > a for a, b in itertools.pairwise(delays[:5]))
    assert max(delays) <= LOCK_BUSY_MAX_RETRY_SECONDS * 1.2
    assert busy_retry_delay(1000) <= LOCK_BUSY_MAX_RETRY_SECONDS * 1.2


@dataclass
class RecordingQueue:
    """Stands in for the broker: what each step enqueued, with its delay and busy count."""

    sent: list[tuple[str, float, int]] = field(default_factory=list)

    def submit_job(self, job_id: str, *, delay_seconds: float = 0, busy: int = 0) -> bool:
        self.sent.append(("submit_job", delay_seconds, busy))
        return True

    def poll_job(
        self, job_id: str, poll_token: str, *, delay_seconds: float, busy: int = 0
    ) -> bool:
        self.sent.append(("poll_job", delay_seconds, busy))
        return True

    def deliver_webhook(self, delivery_id: str, *, delay_seconds: float = 0, busy: int = 0) -> bool:
        self.sent.append(("deliver_webhook", delay_seconds, busy))
        return True


@pytest.mark.parametrize("step", ["submit_job", "poll_job", "deliver_webhook"])
def test_a_step_finding_its_lock_taken_comes_back_later_each_time(ctx: Context, step: str) -> None:
    queue = RecordingQueue()
    recording = Context(**{**vars(ctx), "queue": queue})  # type: ignore[arg-type]
    key = {
        "submit_job": redis_keys.job_lock("vgen_locked"),
        "poll_job": redis_keys.job_lock("vgen_locked"),
        "deliver_webhook": redis_keys.delivery_lock("dlv_locked"),
    }[step]
    run = {
        "submit_job": lambda busy: submit(recording, "vgen_locked", busy=busy),
        "poll_job": lambda busy: poll(recording, "vgen_locked", "token", busy=busy),
        "deliver_webhook": lambda busy: deliver(recording, "dlv_locked", busy=busy),
    }[step]
    with held(ctx.redis, key, ttl_seconds=30) as mine:
        assert mine
        for busy in range(4):
            run(busy)
    assert [(name, count) for name, _, count in queue.sent] == [(step, n) for n in (1, 2, 3, 4)]
    delays = [delay for _, delay, _ in queue.sent]
    assert delays == sorted(delays) and delays[0] < 0.7 and delays[-1] > 3


def test_a_redis_outage_fails_the_lock_open() -> None:
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0")
    with held(dead, "genhook:test:lock:dead", ttl_seconds=1) as mine:
        assert mine
