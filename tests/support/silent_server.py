"""A receiver that accepts every connection, reads what it is sent, and never answers:
the slowest a webhook destination can be short of refusing (each attempt waits out the
whole webhook timeout)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_ACCEPT_POLL_SECONDS = 0.05


class SilentServer:
    """Serve from a daemon thread on 127.0.0.1; ``accepted`` counts the connections."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(_ACCEPT_POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._open: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._open.append(conn)  # kept open, never written to
            self.accepted += 1

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()
        for conn in self._open:
            conn.close()


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()
