"""Run a WSGI app on a real, threaded HTTP server for the length of a test.

Tests that exercise HTTP clients (workers polling a provider, webhooks being delivered) should
cross a real socket rather than a mocked transport, so timeouts, headers and connection handling
behave as in production. The stdlib server is enough for that and needs no extra dependency.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import WSGIApplication

# How often the serving loop checks for shutdown; small, so leaving the context is near-instant.
_POLL_INTERVAL_SECONDS = 0.01
_JOIN_TIMEOUT_SECONDS = 5.0


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow handler cannot stall the client's other requests."""

    daemon_threads = True  # a hung request thread must never keep the test process alive
    # socketserver's default backlog of 5 makes bursts of concurrent clients wait out a 1 s
    # SYN retransmit; tests that fire requests in parallel must not pay that.
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    """Drops the per-request access log that would otherwise clutter test output."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class BackgroundServer:
    """A WSGI app served from a daemon thread that can be stopped and started again on the
    same port (a receiver that goes away for a while and comes back where it was)."""

    def __init__(self, app: WSGIApplication, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: _ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen (on a free port the first time, if none was given) and serve."""
        server = make_server(
            self.host, self.port, self.app, server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )  # fmt: skip
        self.port = server.server_port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_SECONDS},
            name=f"wsgi-server-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket: connections are refused from now."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=_JOIN_TIMEOUT_SECONDS)
        self._server = self._thread = None


@contextmanager
def serve_wsgi(app: WSGIApplication, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` on `port` of `host` (IPv4; a free port by default) and yield its base URL
    (http://127.0.0.1:54321).

    The server runs in a daemon thread and is shut down, and its socket closed, on exit.
    """
    server = BackgroundServer(app, host, port)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
