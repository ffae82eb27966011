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


@pytest.fixture
def keep_alive_receiver() -> Iterator[tuple[str, list[int]]]:
    """A raw HTTP/1.1 receiver that keeps connections open and answers each request with
    ``200`` and a short body; yields its URL and a one-item list: connections accepted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = [0]
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while not stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nthanks")

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted[0] += 1
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook", accepted
    stop.set()
    thread.join(timeout=2)
    listener.close()


def test_a_private_answer_is_not_kept_but_its_connection_is_reused(
    keep_alive_receiver: tuple[str, list[int]],
) -> None:
    # Given a receiver on a non-public address the operator allowed, whose answers the
    # account may not see
    url, accepted = keep_alive_receiver
    client = guarded_client(LOOPBACK)

    # When three webhooks are sent to it
    results = [post_webhook(client, url, b"{}", {}, timeout_seconds=5.0) for _ in range(3)]

    # Then nothing of its answers is kept, and all three went over one connection
    assert [r.status_code for r in results] == [200, 200, 200]
    assert [r.response_body for r in results] == [None, None, None]
    assert accepted[0] == 1
    client.close()
