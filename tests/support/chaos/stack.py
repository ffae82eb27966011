"""genhook's real processes for a chaos run, each in a process group of its own, and the
faults done to them.

Everything listens on free ports of 127.0.0.1: a ``redis-server`` (the bundled binary,
append-only, its data kept in the run's directory so a restart replays it, as in
production), a PostgreSQL database created for the run on the server of
``GENHOOK_TEST_DATABASE_URL`` (dropped at the end), the provider simulator, ``genhook api``
(gunicorn), ``genhook worker`` (Dramatiq) and ``genhook scheduler``, wired as ``genhook up``
wires them: every provider aimed at the simulator's dialect of its API, callbacks to the
API. Settings are genhook's defaults except the render time and what a loopback run needs
(webhooks to 127.0.0.0/8); ``extra_env`` adds more.

:meth:`ChaosStack.close` kills every process group it started, drops the database and
removes the run's directory, whatever happened before.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import redis
import sqlalchemy as sa

from backend import bundled_redis
from backend.commands import SIMULATOR_APP, gunicorn_command
from backend.secret_box import generate_key
from backend.simulator.credentials import PREFIXES, provider_settings
from backend.store.engine import create_engine, normalize_url
from tests.support.faults import CONTROL_TOKEN

GENHOOK = str(Path(sys.executable).parent / "genhook")
#: How long a process may take to answer after it is started.
READY_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    api_key: str
    signing_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class Service:
    """One long-running process (and whatever it forks), led by its own process group."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self._log is None:
            self._log = self.log_path.open("ab")
        self._log.write(f"==== start #{self.starts + 1} of {self.name}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL to the whole group: the process and everything it forked die at once."""
        if self.process is None:
            return
        _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None


class ChaosStack:
    """The running processes of one chaos run; use as a context manager."""

    def __init__(
        self,
        *,
        admin_database_url: str,
        render_seconds: float,
        extra_env: dict[str, str] | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self._own_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="genhook-chaos-"))
        self.admin_database_url = admin_database_url
        self.render_seconds = render_seconds
        self.extra_env = extra_env or {}
        base = sa.make_url(admin_database_url)
        self.database_name = f"{base.database or 'genhook'}_{secrets.token_hex(4)}"
        self.database_url = base.set(database=self.database_name).render_as_string(False)
        self.redis_port = bundled_redis.free_port()
        self.redis_password = bundled_redis.new_password()
        self.redis_url = bundled_redis.url_for(self.redis_port, self.redis_password)
        self.secret_key = generate_key()
        self.redis_dir = self.work_dir / "redis"
        self.api_url = f"http://127.0.0.1:{bundled_redis.free_port()}"
        self.simulator_url = f"http://127.0.0.1:{bundled_redis.free_port()}"
        self.services: dict[str, Service] = {}
        self.engine: sa.Engine | None = None
        self._database_created = False
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> ChaosStack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- starting -------------------------------------------------------------------------

    def start(self) -> None:
        (self.work_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        redis_command = bundled_redis.server_command(
            self.redis_dir, self.redis_port, self.redis_password
        )
        self._add("redis", redis_command, env)
        sim_bind = self.simulator_url.removeprefix("http://")
        self._add("simulator", gunicorn_command(sim_bind, 1, SIMULATOR_APP, threads=8), env)
        api_bind = self.api_url.removeprefix("http://")
        self._add("api", [GENHOOK, "api", "--bind", api_bind], env)
        self._add("worker", [GENHOOK, "worker"], env)
        self._add("scheduler", [GENHOOK, "scheduler"], env)

        self.start_service("redis")
        self._create_database()
        subprocess.run([GENHOOK, "migrate"], env=env, check=True, capture_output=True)
        self.engine = create_engine(self.database_url)
        for name in ("simulator", "api", "worker", "scheduler"):
            self.start_service(name)

    def environment(self) -> dict[str, str]:
        """What every genhook process runs with: no ``GENHOOK_*`` of the caller's."""
        aimed = provider_settings(self.simulator_url)
        providers = {
            f"GENHOOK_{key.upper()}": value
            for name in PREFIXES
            for key, value in aimed[name].items()
        }
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")},
            **providers,
            "GENHOOK_DATABASE_URL": self.database_url,
            "GENHOOK_REDIS_URL": self.redis_url,
            "GENHOOK_SECRET_KEY": self.secret_key,
            "GENHOOK_VAR_DIR": str(self.work_dir / "var"),
            "GENHOOK_SIMULATOR_URL": self.simulator_url,
            "GENHOOK_SIMULATOR_RENDER_SECONDS": str(self.render_seconds),
            "GENHOOK_PUBLIC_BASE_URL": self.api_url,
            "GENHOOK_API_PORT": self.api_url.rsplit(":", 1)[1],
            "GENHOOK_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            # The load drives few accounts hard: limits counted, never reached.
            "GENHOOK_RATE_LIMIT_READS": "1000000/second",
            "GENHOOK_RATE_LIMIT_WRITES": "1000000/second",
            "GENHOOK_MAX_JOBS_IN_FLIGHT": "10000000",
            "GENHOOK_QUOTA_DELIVERIES": "100000000/hour",
            "GENHOOK_SIMULATOR_CONTROL_TOKEN": CONTROL_TOKEN,
            **self.extra_env,
        }

    def _add(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = self.work_dir / "logs" / f"{name}.log"
        self.services[name] = Service(name, command, env, log)

    def start_service(self, name: str) -> None:
        """Start (or restart) one process and wait until it answers; nothing once the stack
        is closed (a fault's restart may come after an interrupted run was cleaned up)."""
        service = self.services[name]
        with self._lock:
            if self._closed or service.alive:
                return
            service.start()
        if name == "redis":
            bundled_redis.wait_until_ready(self.redis_url, service.process)
        elif name == "simulator":
            self._wait_http(f"{self.simulator_url}/healthz", service)
        elif name == "api":
            self._wait_http(f"{self.api_url}/readyz", service)

    def _wait_http(self, url: str, service: Service) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not service.alive:
                raise RuntimeError(f"{service.name} exited; see {service.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{service.name} did not answer {url} in {READY_TIMEOUT_SECONDS}s")

    def _create_database(self) -> None:
        with self._admin() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.database_name}"'))
        self._database_created = True

    @contextlib.contextmanager
    def _admin(self) -> Iterator[sa.Connection]:
        engine = sa.create_engine(
            normalize_url(self.admin_database_url), isolation_level="AUTOCOMMIT"
        )
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    def engine_or_fail(self) -> sa.Engine:
        """An engine on the run's database, for the checks."""
        if self.engine is None:
            raise RuntimeError("the stack is not started")
        return self.engine

    # -- accounts -------------------------------------------------------------------------

    def create_account(self, email: str, credits: int) -> Account:
        """``genhook accounts create``, as an operator would run it."""
        result = subprocess.run(
            [GENHOOK, "accounts", "create", "--email", email, "--credits", str(credits)],
            env=self.services["api"].env,
            check=True,
            capture_output=True,
            text=True,
        )
        fields = dict(re.findall(r"^(account|api key|signing secret)\s+(\S+)", result.stdout, re.M))
        return Account(fields["account"], email, fields["api key"], fields["signing secret"])

    # -- faults ---------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """kill -9 one process and everything it forked."""
        self.services[name].kill()

    def flush_redis(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        try:
            client.flushall()
        finally:
            client.close()

    def terminate_database_connections(self) -> int:
        """Every connection to the run's database is cut (as a failover or a restart of
        PostgreSQL would); returns how many there were."""
        with self._admin() as conn:
            ended = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": self.database_name},
            ).all()
        return len(ended)

    # -- the end --------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process group (the API first, Redis last), drop the database, remove
        the run's directory; each step runs even if an earlier one failed."""
        with self._lock:
            self._closed = True
        for name in ("api", "scheduler", "worker", "simulator", "redis"):
            service = self.services.get(name)
            if service is not None:
                with contextlib.suppress(Exception):
                    service.close()
        if self.engine is not None:
            self.engine.dispose()
        if self._database_created:
            with contextlib.suppress(Exception), self._admin() as conn:
                conn.execute(
                    sa.text(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
                )
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.services[name].log_path
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
