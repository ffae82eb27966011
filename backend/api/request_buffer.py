"""One HTTP request's bytes as they arrive, until they are all there or too late.

The API's gunicorn worker (``backend/api/worker.py``) reads every request here, in its
event loop, before any thread sees it: a client that sends half a request line, trickles
its headers or stalls in its body costs a socket and a buffer, never a thread, and is cut
off at its deadline. h11 only says where the request ends (``Content-Length`` or chunked,
``Expect: 100-continue``); gunicorn still parses the bytes the application gets.

Deadlines, in the manner of nginx and Apache's mod_reqtimeout:

- the request line and headers must be complete within ``header_timeout`` of the request's
  start (the connection's accept, or a kept-alive connection's first new byte);
- the body then has ``body_timeout``, extended by one second for every
  ``body_min_bytes_per_second`` received, so a steady upload is never cut and a trickle is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import h11

#: Largest request line plus headers read (h11's incomplete-event limit); beyond, a 431.
MAX_HEADER_BYTES = 32 * 1024


@dataclass(frozen=True)
class ReadLimits:
    """How long and how much one request may take to arrive."""

    header_timeout_seconds: float
    body_timeout_seconds: float
    body_min_bytes_per_second: float
    max_body_bytes: int


class Progress(enum.Enum):
    WAITING = "waiting"
    COMPLETE = "complete"


class Refused(Exception):
    """The request cannot be served: answered with ``status`` and the connection closed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class RequestBuffer:
    """Accumulates one request's raw bytes (and any pipelined ones after it)."""

    def __init__(self, limits: ReadLimits, started_at: float) -> None:
        self.limits = limits
        self.started_at = started_at
        self.raw = bytearray()
        self.headers_done_at: float | None = None
        self.body_received = 0
        #: The client sent ``Expect: 100-continue`` and waits to be told to send the body.
        self.awaits_continue = False
        self._parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)

    def deadline(self) -> float:
        """When this request must be complete (monotonic seconds)."""
        if self.headers_done_at is None:
            return self.started_at + self.limits.header_timeout_seconds
        allowance = self.body_received / self.limits.body_min_bytes_per_second
        return self.headers_done_at + self.limits.body_timeout_seconds + allowance

    def timeout_detail(self) -> str:
        if self.headers_done_at is None:
            return (
                "the request line and headers did not arrive within "
                f"{self.limits.header_timeout_seconds:g} s"
            )
        return (
            f"the request body did not arrive in time (allowed: "
            f"{self.limits.body_timeout_seconds:g} s plus one second per "
            f"{self.limits.body_min_bytes_per_second:g} bytes)"
        )

    def feed(self, data: bytes, now: float) -> Progress:
        """Take the bytes just read; raises :class:`Refused` for a request never served."""
        self.raw += data
        self._parser.receive_data(data)
        while True:
            try:
                event = self._parser.next_event()
            except h11.RemoteProtocolError as exc:
                raise Refused(exc.error_status_hint, f"malformed request: {exc}") from None
            if event is h11.NEED_DATA:
                self.awaits_continue = self._parser.they_are_waiting_for_100_continue
                return Progress.WAITING
            if isinstance(event, h11.Request):
                self.headers_done_at = now
                self._check_declared_length(event)
            elif isinstance(event, h11.Data):
                self.body_received += len(event.data)
                self._check_length(self.body_received)
            elif isinstance(event, h11.EndOfMessage):
                return Progress.COMPLETE
            else:  # PAUSED or ConnectionClosed cannot come before EndOfMessage
                return Progress.WAITING

    def _check_declared_length(self, request: h11.Request) -> None:
        for name, value in request.headers:
            if name == b"content-length":
                self._check_length(int(value))  # h11 has checked it is a number

    def _check_length(self, length: int) -> None:
        if length > self.limits.max_body_bytes:
            raise Refused(413, f"request bodies are limited to {self.limits.max_body_bytes} bytes")
