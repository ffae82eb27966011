"""One webhook attempt against receivers that misbehave at the socket level."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from backend.webhooks.guarded_transport import guarded_client
from backend.webhooks.sender import post_webhook

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.fixture
def trickling_receiver() -> Iterator[str]:
    """A raw TCP receiver that answers one byte of its status line every 0.2 s, for ever."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                    if stop.wait(0.2):
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    stop.set()
    thread.join(timeout=2)
    listener.close()


def test_an_attempt_ends_at_its_timeout_even_if_the_receiver_keeps_trickling(
    trickling_receiver: str,
) -> None:
    # Given a receiver that sends a byte every 0.2 s (each read is well within the timeout)
    client = guarded_client(LOOPBACK)

    # When an attempt with a 1 s timeout is made
    started = time.monotonic()
    result = post_webhook(client, trickling_receiver, b"{}", {}, timeout_seconds=1.0)
    took = time.monotonic() - started

    # Then it gives up after about 1 s in total, as a timeout
    assert result.status_code is None and "Timeout" in (result.error or "")
    assert 0.9 <= took < 2.0
    client.close()
