"""The real API under real gunicorn, and real slow sockets to throw at it.

The API runs as a subprocess started with the production command line
(``backend.commands.api_command``), on 127.0.0.1, with the test Redis and database and
short timeouts; the slow clients connect from another loopback address (127.0.0.2), so
the per-client connection cap falls on them and not on the well-behaved client.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from backend.accounts import create_account
from backend.commands import api_command
from backend.context import build_context
from backend.settings import Settings

#: Where the attacker connects from: loopback, but another address than the test's own.
ATTACKER = "127.0.0.2"


@dataclass
class RunningApi:
    url: str
    port: int
    api_key: str
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as the ``GENHOOK_*`` variables a child process reads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"GENHOOK_{name.upper()}"] = str(value)
    return env


@contextmanager
def running_api(settings: Settings, *, workers: int = 1) -> Iterator[RunningApi]:
    ctx = build_context(settings)
    try:
        api_key = create_account(ctx, "tenant@example.com").api_key
    finally:
        ctx.close()
    port = free_port()
    process = subprocess.Popen(
        api_command(settings, f"127.0.0.1:{port}", workers),
        env=settings_env(settings),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield RunningApi(url, port, api_key, process)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError("the API did not start")


def slow_socket(
    port: int, first_bytes: bytes = b"", *, receive_buffer: int | None = None
) -> socket.socket:
    """A connection from the attacker's address, having sent ``first_bytes``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:  # before connecting, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(5)
    sock.bind((ATTACKER, 0))
    sock.connect(("127.0.0.1", port))
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed (EOF or reset after whatever it answered)."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def answer_of(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (or ``timeout``)."""
    sock.settimeout(timeout)
    chunks = []
    with suppress(OSError):
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def one_answer(sock: socket.socket, timeout: float) -> bytes:
    """One whole answer (head and a ``Content-Length`` body) on a kept-alive connection."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b"<closed>"
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536) or b"<closed>"
    return head + b"\r\n\r\n" + body


def timed_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, float]:
    """Status and seconds taken by one GET on a fresh connection (3 s at most)."""
    began = time.monotonic()
    response = httpx.get(url, headers=headers, timeout=3)
    return response.status_code, time.monotonic() - began
