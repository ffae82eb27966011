"""``genhook up`` as a test runs it: in a temporary directory on free ports, with the
processes it starts read from /proc, so a test can check that none is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from backend.bundled_redis import free_port
from tests.conftest import wait_until

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
        # The tests poll jobs every 20 ms: request limits counted, never reached.
        "GENHOOK_RATE_LIMIT_READS": "1000000/second",
        "GENHOOK_RATE_LIMIT_WRITES": "1000000/second",
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
