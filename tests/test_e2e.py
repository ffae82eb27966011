"""The README's story, with the real processes: ``genhook up`` (gunicorn, the Dramatiq
worker, the scheduler, the simulator and, by default, the bundled Redis and SQLite), a
webhook receiver in its own process, and curl-like calls over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from backend.bundled_redis import free_port
from tests.conftest import PG_URL, TEST_SECRET_KEY, wait_until
from tests.support.receiver import Reply, WebhookReceiver
from tests.support.stack import (
    EXTERNAL,
    Stack,
    children_of,
    processes,
    sessions_alive,
    start_stack,
    stop_stack,
)
from tests.support.wsgi_server import serve_wsgi

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ["embedded"] + (["postgres+redis"] if PG_URL and EXTERNAL else [])


@pytest.fixture(scope="module", params=VARIANTS)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One stack for the whole module (starting one takes seconds); the test that kills
    and stops it comes last."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    extra = {}
    if request.param == "postgres+redis":
        # The shared test database holds secrets sealed with the tests' key.
        extra = {
            "GENHOOK_DATABASE_URL": PG_URL,
            "GENHOOK_REDIS_URL": EXTERNAL,
            "GENHOOK_SECRET_KEY": TEST_SECRET_KEY,
        }
    running = start_stack(tmp_path, extra)
    sessions = list(children_of(running.process.pid))
    yield running
    stop_stack(running)
    for pid in sessions_alive(sessions):  # never leave a stray worker consuming test Redis
        os.kill(pid, signal.SIGKILL)


def test_submit_render_and_receive_a_signed_webhook(stack: Stack) -> None:
    # Given a receiver on this machine
    receiver = WebhookReceiver()
    with serve_wsgi(receiver) as url:
        # When a job is submitted with curl's request
        accepted = stack.submit(webhook_url=f"{url}/hook?order=7", metadata={"listing": "L-9"})
        assert accepted["id"].startswith("vgen_") and accepted["status"] == "pending"

        # Then a webhook arrives, verifiable both ways
        (hook,) = receiver.wait_for(1, timeout=30)
    payload = Webhook(stack.signing_secret).verify(hook.body, hook.headers)
    assert payload["id"] == accepted["id"] and payload["status"] == "completed"
    assert payload["metadata"] == {"listing": "L-9"} and hook.query == "order=7"

    # And polling shows the completed job with its phases and a downloadable video
    job = stack.completed(accepted["id"])
    # The video is served by genhook itself, from both links (each read signs a fresh one)
    assert httpx.URL(job["output_url"]).path == httpx.URL(payload["output_url"]).path
    assert httpx.get(job["output_url"]).content[4:8] == b"ftyp"
    assert httpx.get(payload["output_url"]).content[4:8] == b"ftyp"
    account = httpx.get(f"{stack.base_url}/v1/account", headers=stack.headers()).json()
    assert account["credits"] < 50


def test_an_endpoint_gets_a_retried_webhook_logged_in_the_delivery_log(stack: Stack) -> None:
    # Given a webhook endpoint registered over HTTP, whose receiver fails once
    receiver = WebhookReceiver()
    receiver.reply(Reply("503 Service Unavailable", headers=[("Retry-After", "1")]))
    with serve_wsgi(receiver) as url:
        created = httpx.post(
            f"{stack.base_url}/v1/webhook-endpoints",
            json={"url": f"{url}/zap", "retry_schedule": ["0s", "0.5s"]},
            headers=stack.headers(),
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]

        # When a job completes
        accepted = stack.submit()

        # Then the endpoint gets the event on the second attempt, signed with its secret
        first, second = receiver.wait_for(2, timeout=30)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert Webhook(secret).verify(second.body, second.headers)["id"] == accepted["id"]

    # And the delivery log shows both attempts
    def delivered() -> dict | None:
        log = httpx.get(
            f"{stack.base_url}/v1/video/generations/{accepted['id']}/deliveries",
            headers=stack.headers(),
        ).json()
        return log["data"][0] if log["data"][0]["status"] == "delivered" else None

    delivery = wait_until(delivered)
    statuses = [a["response_status"] for a in delivery["attempts"]]
    assert delivery["status"] == "delivered" and statuses == [503, 200]
    # ...as does the worker's log, once per attempt, without httpx's own line per request
    assert f"delivery {delivery['id']}" in stack.output()
    assert "HTTP Request:" not in stack.output()


def test_the_readme_receiver_verifies_a_real_webhook(stack: Stack) -> None:
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "receiver.py"), str(port)],
        env={**os.environ, "GENHOOK_SIGNING_SECRET": stack.signing_secret},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until(lambda: _accepts(port))
        accepted = stack.submit(webhook_url=f"http://127.0.0.1:{port}/webhook")
        assert receiver.stdout is not None
        line = receiver.stdout.readline()
    finally:
        receiver.kill()
        receiver.wait()
    assert line.startswith(f"verified video.generation.completed {accepted['id']} http")


def test_a_dead_worker_is_restarted_and_stopping_ends_every_child(stack: Stack) -> None:
    # Given the running stack's children: a job worker and a delivery worker
    children = children_of(stack.process.pid)
    workers = {pid: cmd.split() for pid, cmd in children.items() if "dramatiq" in cmd}
    assert sorted(cmd[cmd.index("--queues") + 1 :] for cmd in workers.values()) == [
        ["jobs"],
        ["webhooks"],
    ]
    (worker_pid,) = [pid for pid, cmd in workers.items() if cmd[-2:] == ["--queues", "jobs"]]

    forked = [p for p, info in processes().items() if info[1] == worker_pid and p != worker_pid]
    assert forked, "dramatiq runs its workers in forked processes"

    # When the worker's main process is killed outright
    os.kill(worker_pid, signal.SIGKILL)

    # Then genhook says so, clears the orphaned worker processes and starts a new worker
    wait_until(lambda: "worker (jobs) exited with code" in stack.output(), 15)
    assert "restarting it" in stack.output()
    wait_until(lambda: sessions_alive([worker_pid]) == [], 10)
    accepted = stack.submit()
    stack.completed(accepted["id"])

    # And SIGTERM stops every child, their own children, and genhook itself
    sessions = list(children_of(stack.process.pid))
    assert len(sessions) >= 4
    stop_stack(stack)
    assert stack.process.returncode == 0
    assert "genhook: stopped." in stack.output()
    assert sessions_alive(sessions) == []
    # ...letting the worker drain rather than be killed
    assert "Killing worker process" not in stack.output()


def _accepts(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
    except httpx.TransportError:
        return False
    return True
