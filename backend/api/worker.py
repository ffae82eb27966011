"""The gunicorn worker the API runs under: slow clients cost a socket, never a thread.

gunicorn's own workers give a slow client what it asks for (read in gunicorn 27's source):

- ``sync`` serves one connection at a time and reads it with no timeout: one client per
  worker process sending half a request line stops the worker until the arbiter kills it
  (``--timeout``, 30 s), with whatever else it was doing;
- ``gthread`` hands each new connection to a thread at once; the thread waits up to 5 s
  for a first byte, and once one has come it reads the rest with no timeout at all (the
  main thread keeps the arbiter's heartbeat going, so nothing ever kills it): ``--threads``
  half-sent requests stop the worker for good, and a body read by the application blocks
  the same way;
- ``gevent`` bounds the wait for a request's headers by ``--keep-alive`` but not a body or
  a response the client does not read, and monkey-patches the whole process (the lock
  renewer thread, SQLAlchemy's pools and Redis clients would become greenlets, and one
  CPU-bound request stalls every other).

This worker keeps ``gthread``'s threads (the app's locks, pools and renewer thread work as
they are) and moves the reading into its event loop: a connection is read without
blocking into a :class:`~backend.api.request_buffer.RequestBuffer` until the request is
whole (headers and body), and only then handed to a thread, with every byte in memory.
Each request has a header deadline and a body deadline with a minimum rate; an idle
connection is closed after the keep-alive time; the thread writing a response gives up
on a client that takes none of it for ``api_write_timeout_seconds``; a client address
may hold at most ``api_max_connections_per_client`` connections per worker process; and
closing a connection never blocks the loop (gunicorn's graceful close waits up to 2 s).
"""

from __future__ import annotations

import contextlib
import json
import math
import selectors
import socket
import time
from collections import Counter
from functools import partial
from http import HTTPStatus
from typing import Any

from gunicorn import http
from gunicorn.workers.gthread import TConn, ThreadWorker

from backend.api.errors import PROBLEM_JSON, problem_type
from backend.api.request_buffer import Progress, ReadLimits, Refused, RequestBuffer
from backend.settings import Settings, get_settings

#: Bytes read from a socket at once.
READ_CHUNK_BYTES = 64 * 1024
#: After answering "Connection: close", how long a connection is drained (in the event
#: loop) so the client reads the answer before the socket goes away, and at most how much.
CLOSE_LINGER_SECONDS = 2.0
CLOSE_LINGER_MAX_BYTES = 64 * 1024


def max_request_body_bytes(settings: Settings) -> int:
    """The largest body any resource reads: a generation with two inline images."""
    from backend.api.body import MAX_BODY_BYTES

    return MAX_BODY_BYTES + 2 * (settings.image_max_bytes * 4 // 3 + 64)


def read_limits(settings: Settings) -> ReadLimits:
    return ReadLimits(
        header_timeout_seconds=settings.api_header_timeout_seconds,
        body_timeout_seconds=settings.api_body_timeout_seconds,
        body_min_bytes_per_second=settings.api_body_min_bytes_per_second,
        max_body_bytes=max_request_body_bytes(settings),
    )


def raw_problem(status: int, detail: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete ``Connection: close`` answer, for requests no thread will see."""
    phrase = HTTPStatus(status).phrase
    slug = phrase.lower().replace(" ", "-")
    body = json.dumps(
        {"type": problem_type(slug), "title": phrase, "status": status, "detail": detail,
         "errors": []}
    ).encode()  # fmt: skip
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        f"Content-Type: {PROBLEM_JSON}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ConnectionsPerAddress:
    """Open connections per client address in this process (the event loop's thread only)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        if self.limit and self.open[address] >= self.limit:
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


class BufferedConn(TConn):
    """gunicorn's connection, plus the request being read and its own closing."""

    worker: BufferedThreadWorker
    address: str
    request: RequestBuffer | None = None
    released = False
    #: The event loop already answered ``Expect: 100-continue`` for the request in hand.
    sent_continue = False

    def init(self) -> None:
        super().init()
        # In a thread, every read and write is bounded: the request is already in memory,
        # so this bounds writing the response to a client that does not read it.
        self.sock.settimeout(self.worker.settings.api_write_timeout_seconds)

    def set_timeout(self) -> None:
        self.timeout = time.monotonic() + self.worker.settings.api_keepalive_seconds

    def close(self, graceful: bool = False) -> None:
        self.worker.close_connection(self, graceful=graceful)


class BufferedThreadWorker(ThreadWorker):
    """``gthread`` with requests read whole in the event loop (see the module docstring)."""

    settings: Settings

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl:
            raise RuntimeError("genhook's API worker does not terminate TLS: put a proxy in front")

    def init_process(self) -> None:
        self.settings = get_settings()
        self.limits = read_limits(self.settings)
        self.per_address = ConnectionsPerAddress(self.settings.api_max_connections_per_client)
        self.reading: set[BufferedConn] = set()
        self.lingering: dict[socket.socket, float] = {}
        super().init_process()

    # -- accepting -------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, client = listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        address = client[0] if isinstance(client, tuple) else str(client)
        if not self.per_address.admit(address):
            limit = self.per_address.limit
            # info, not warning: an attacker chooses how many of these lines there are
            self.log.info("refused a connection from %s: already %s open", address, limit)
            sock.setblocking(False)
            self._answer_and_close(
                sock,
                raw_problem(
                    429,
                    f"at most {limit} connections at once from one address",
                    {"Retry-After": "1"},
                ),
            )
            return
        self.nr_conns += 1
        conn = BufferedConn(self.cfg, sock, client, listener.getsockname())
        conn.worker, conn.address = self, address
        self._read_request(conn, b"", started_at=time.monotonic())

    def enqueue_req(self, conn: BufferedConn) -> None:
        """gunicorn calls this for a kept-alive connection that became readable and for a
        pipelined request already buffered: read that request whole first."""
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        self._read_request(conn, leftover, started_at=time.monotonic())

    # -- reading -----------------------------------------------------------------------

    def _read_request(self, conn: BufferedConn, leftover: bytes, *, started_at: float) -> None:
        conn.request = RequestBuffer(self.limits, started_at)
        conn.sock.setblocking(False)
        self.reading.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        if leftover:
            self._take(conn, leftover)

    def _on_readable(self, conn: BufferedConn, sock: socket.socket) -> None:
        try:
            data = conn.sock.recv(READ_CHUNK_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before sending a whole request
            self._stop_reading(conn)
            self.nr_conns -= 1
            conn.close()
            return
        try:
            self._take(conn, data)
        except Exception:  # never let one connection break the loop that serves all
            self.log.exception("dropped a connection from %s", conn.address)
            if conn in self.reading:
                self._refuse(conn, 400, "the request could not be read")

    def _take(self, conn: BufferedConn, data: bytes) -> None:
        assert conn.request is not None
        try:
            progress = conn.request.feed(data, time.monotonic())
        except Refused as refused:
            self._refuse(conn, refused.status, refused.detail)
            return
        if progress is Progress.COMPLETE:
            self._dispatch(conn)
        elif conn.request.awaits_continue:
            conn.request.awaits_continue = False
            conn.sent_continue = True
            self._send_nowait(conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _dispatch(self, conn: BufferedConn) -> None:
        """The whole request is in memory: a thread may serve it now."""
        assert conn.request is not None
        self._stop_reading(conn)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(conn.request.raw))
        conn.request = None
        conn.data_ready = True
        super().enqueue_req(conn)

    def _stop_reading(self, conn: BufferedConn) -> None:
        self.reading.discard(conn)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _refuse(self, conn: BufferedConn, status: int, detail: str) -> None:
        self.log.warning("answered %s to %s and closed: %s", status, conn.address, detail)
        self._stop_reading(conn)
        self.nr_conns -= 1
        self._release(conn)
        self._answer_and_close(conn.sock, raw_problem(status, detail))

    def murder_pending(self) -> None:
        """Each turn of the loop: end the requests past their deadline, and the lingering
        closes past theirs."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self.reading if c.request and c.request.deadline() <= now]:
            assert conn.request is not None
            if conn.request.raw:
                self._refuse(conn, 408, conn.request.timeout_detail())
            else:  # nothing sent yet: just close, as for an idle kept-alive connection
                self._stop_reading(conn)
                self.nr_conns -= 1
                conn.close()
        if not self.alive:  # stopping: connections that have not started a request go now
            for conn in [c for c in self.reading if c.request and not c.request.raw]:
                self._stop_reading(conn)
                self.nr_conns -= 1
                conn.close()
        for sock, deadline in list(self.lingering.items()):
            if deadline <= now:
                self._end_linger(sock)

    # -- writing in threads ------------------------------------------------------------

    def handle_request(self, req: Any, conn: BufferedConn) -> bool:
        if conn.sent_continue:  # gunicorn would say "100 Continue" a second time
            conn.sent_continue = False
            req._expected_100_continue = False
        try:
            return bool(super().handle_request(req, conn))
        except TimeoutError:
            self.log.warning(
                "closed the connection from %s: it read none of the response for %g s",
                conn.address,
                self.settings.api_write_timeout_seconds,
            )
            return False

    # -- closing -------------------------------------------------------------------------

    def close_connection(self, conn: BufferedConn, *, graceful: bool) -> None:
        """Every close of a connection comes here (gunicorn's included)."""
        self._release(conn)
        if graceful:
            conn.sock.setblocking(False)
            self._linger(conn.sock)
        else:
            _close(conn.sock)

    def _release(self, conn: BufferedConn) -> None:
        if not conn.released:
            conn.released = True
            self.per_address.release(conn.address)

    def _answer_and_close(self, sock: socket.socket, answer: bytes) -> None:
        self._send_nowait(sock, answer)
        self._linger(sock)

    def _send_nowait(self, sock: socket.socket, data: bytes) -> None:
        """Best effort: a client whose window is full gets what fits."""
        with contextlib.suppress(OSError):
            sock.send(data)

    def _linger(self, sock: socket.socket) -> None:
        """Close after the answer: send FIN, then drain what the client still sends (in
        the event loop, never blocking it) until it closes too or the linger ends, so the
        kernel does not reset the connection before the client has read the answer."""
        try:
            sock.shutdown(socket.SHUT_WR)
            self.poller.register(sock, selectors.EVENT_READ, self._drain)
        except (OSError, ValueError, KeyError):
            _close(sock)
            return
        self.lingering[sock] = time.monotonic() + CLOSE_LINGER_SECONDS

    def _drain(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(CLOSE_LINGER_MAX_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data or len(data) >= CLOSE_LINGER_MAX_BYTES:
            self._end_linger(sock)

    def _end_linger(self, sock: socket.socket) -> None:
        self.lingering.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(sock)
        _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def gunicorn_keepalive(seconds: float) -> int:
    """gunicorn's ``--keep-alive`` takes whole seconds; 0 turns keep-alive off. The worker
    times kept-alive connections itself, to the fraction."""
    return math.ceil(seconds)
