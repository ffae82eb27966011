"""The README's story, with the real processes: ``genhook up`` (gunicorn, the Dramatiq
worker, the scheduler, the simulator and, by default, the bundled Redis and SQLite), a
webhook receiver in its own process, and curl-like calls over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from backend.bundled_redis import free_port
from tests.conftest import PG_URL, wait_until
from tests.support.receiver import Reply, WebhookReceiver
from tests.support.wsgi_server import serve_wsgi

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
GENHOOK = Path(sys.executable).parent / "genhook"
EXTERNAL = os.environ.get("GENHOOK_TEST_REDIS_URL", "")


@dataclass
class Stack:
    process: subprocess.Popen[str]
    base_url: str
    api_key: str
    signing_secret: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def submit(self, **fields: object) -> dict:
        body = {"model": "seedance-1-pro", "prompt": "Walkthrough of a sunny loft", **fields}
        response = httpx.post(
            f"{self.base_url}/v1/video/generations", json=body, headers=self.headers()
        )
        assert response.status_code == 202, response.text
        return dict(response.json())

    def job(self, job_id: str) -> dict:
        response = httpx.get(
            f"{self.base_url}/v1/video/generations/{job_id}", headers=self.headers()
        )
        return dict(response.json())

    def completed(self, job_id: str, timeout: float = 30) -> dict:
        return dict(
            wait_until(lambda: (j := self.job(job_id))["status"] == "completed" and j, timeout)
        )


def start_stack(tmp_path: Path, extra_env: dict[str, str]) -> Stack:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")} | {
        "GENHOOK_SIMULATOR_URL": f"http://127.0.0.1:{free_port()}",
        "GENHOOK_SIMULATOR_RENDER_SECONDS": "1",
        "GENHOOK_POLL_INTERVAL_SECONDS": "0.25",
        **extra_env,
    }
    port = free_port()
    log = tmp_path / "up.log"
    process = subprocess.Popen(
        [str(GENHOOK), "up", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_until(lambda: "genhook is up" in log.read_text() or process.poll() is not None, 60)
    assert process.poll() is None, log.read_text()
    demo = json.loads((tmp_path / "var" / "demo-account.json").read_text())
    return Stack(process, f"http://127.0.0.1:{port}", demo["api_key"], demo["signing_secret"], log)


def stop_stack(stack: Stack) -> None:
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGTERM)
        stack.process.wait(60)


def processes() -> dict[int, tuple[int, int, str, str]]:
    """pid -> (parent pid, session id, state, command line) of every live process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), int(fields[3]), fields[0], cmdline)
    return found


def children_of(pid: int) -> dict[int, str]:
    """pid -> command line of the direct children of ``pid``."""
    return {p: info[3] for p, info in processes().items() if info[0] == pid}


def sessions_alive(session_ids: list[int]) -> list[int]:
    """Live processes in any of these sessions (each child of genhook leads one)."""
    return [p for p, info in processes().items() if info[1] in session_ids]


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
        extra = {"GENHOOK_DATABASE_URL": PG_URL, "GENHOOK_REDIS_URL": EXTERNAL}
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
    # Given the running stack's children
    children = children_of(stack.process.pid)
    (worker_pid,) = [pid for pid, cmd in children.items() if "dramatiq" in cmd]

    forked = [p for p, info in processes().items() if info[1] == worker_pid and p != worker_pid]
    assert forked, "dramatiq runs its workers in forked processes"

    # When the worker's main process is killed outright
    os.kill(worker_pid, signal.SIGKILL)

    # Then genhook says so, clears the orphaned worker processes and starts a new worker
    wait_until(lambda: "worker exited with code" in stack.output(), 15)
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
