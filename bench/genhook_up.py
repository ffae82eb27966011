"""``genhook up`` for benchmarks: started in a scratch directory, driven through its CLI.

Why it exists: ``bench/polling.py`` and ``bench/run.py`` measure the whole stack as a user
runs it (API, workers, scheduler, simulator, bundled Redis), through its public interfaces
only: the ``genhook`` command, ``GENHOOK_*`` settings, the HTTP API and the simulator's
routes. The caller's own ``GENHOOK_*`` environment is left out (no shared Redis, no real
provider); the limits are raised out of reach (``bench/limits.py``).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.limits import GENEROUS_LIMITS_ENV

UP_TIMEOUT_SECONDS = 120.0
BANNER = "genhook is up"


@dataclass(frozen=True)
class UpStack:
    work_dir: Path
    base_url: str
    sim_url: str
    #: The stack's own settings (``var/stack.env``) over the environment it was started with.
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    @property
    def redis_url(self) -> str:
        return self.env["GENHOOK_REDIS_URL"]

    @property
    def control_headers(self) -> dict[str, str]:
        """What the simulator's ``/_sim/*`` routes want."""
        return {"Authorization": f"Bearer {self.env['GENHOOK_SIMULATOR_CONTROL_TOKEN']}"}

    def genhook(self, *args: str) -> str:
        """A ``genhook`` command against this stack (same directory, same settings)."""
        return subprocess.run(
            [*genhook_command(), *args],
            cwd=self.work_dir,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout


@contextmanager
def running_up(
    work_dir: Path,
    *,
    port: int,
    simulator_port: int,
    render_seconds: float,
    extra_env: dict[str, str] | None = None,
) -> Iterator[UpStack]:
    """``genhook up`` in ``work_dir``, stopped (SIGINT, as Ctrl-C) on the way out."""
    sim_url = f"http://127.0.0.1:{simulator_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")}
    env.update(
        {
            "GENHOOK_SIMULATOR_URL": sim_url,
            "GENHOOK_SIMULATOR_RENDER_SECONDS": f"{render_seconds:g}",
            **GENEROUS_LIMITS_ENV,
            **(extra_env or {}),
        }
    )
    with (work_dir / "up.log").open("wb") as log:
        process = subprocess.Popen(
            [*genhook_command(), "up", "--port", str(port)],
            cwd=work_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(work_dir / "up.log", process)
            stack_env = read_stack_env(work_dir / "var" / "stack.env")
            yield UpStack(work_dir, f"http://127.0.0.1:{port}", sim_url, env | stack_env, process)
        finally:
            stop(process)


def genhook_command() -> list[str]:
    """The ``genhook`` script beside this Python, else ``python -m backend.cli``."""
    script = Path(sys.executable).parent / "genhook"
    return [str(script)] if script.exists() else [sys.executable, "-m", "backend.cli"]


def wait_until_up(log_path: Path, process: subprocess.Popen[bytes]) -> None:
    """Wait for the banner."""
    deadline = time.monotonic() + UP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if BANNER in text:
            return
        if process.poll() is not None:
            raise SystemExit(f"genhook up exited ({process.returncode}):\n{text[-2000:]}")
        time.sleep(0.5)
    raise SystemExit(f"genhook up did not come up in {UP_TIMEOUT_SECONDS:g} s; see {log_path}")


def read_stack_env(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines ``genhook up`` writes to ``var/stack.env``."""
    values = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = shlex.split(value)[0] if value else ""
    return values


def create_account(
    stack: UpStack, email: str, credits: int, *, allow_private_webhooks: bool = False
) -> str:
    """``genhook accounts create``; its API key."""
    args = ["accounts", "create", "--email", email, "--credits", str(credits)]
    if allow_private_webhooks:
        args.append("--allow-private-webhooks")
    out = stack.genhook(*args)
    found = re.search(r"^api key\s+(\S+)", out, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no api key in the output of accounts create:\n{out}")
    return found.group(1)


def stop(process: subprocess.Popen[bytes]) -> None:
    """As Ctrl-C would: the supervisor stops its children in order."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(90)
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(30)


def log_warnings(work_dir: Path) -> list[str]:
    """The WARNING and ERROR lines of ``up.log``."""
    lines = (work_dir / "up.log").read_text(errors="replace").splitlines()
    return [line for line in lines if "WARNING" in line or "ERROR" in line]
