"""The chaos runs' webhook receiver: records every POST it answers, and can go away.

Each POST is answered ``200`` and recorded with its arrival time, its ``webhook-id`` and the
job id, event and status of its JSON body. :meth:`ChaosReceiver.stop` closes the listening
socket, so genhook's attempts are refused until :meth:`ChaosReceiver.start` serves again on
the same port (a receiver down for a while, then back where it was).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.support.wsgi_server import BackgroundServer

TERMINAL_EVENTS = frozenset(
    {"video.generation.completed", "video.generation.failed", "video.generation.canceled"}
)


@dataclass(frozen=True)
class Post:
    """One webhook POST as received."""

    #: ``time.monotonic()`` at arrival.
    at: float
    path: str
    webhook_id: str
    job_id: str
    event: str
    status: str

    @property
    def terminal(self) -> bool:
        return self.event in TERMINAL_EVENTS


class ChaosReceiver:
    """A threaded HTTP server on 127.0.0.1 that keeps every POST in :attr:`posts`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posts: list[Post] = []
        self._closed = False
        self._server = BackgroundServer(self._app)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self) -> None:
        with self._lock:
            if not self._closed:
                self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def close(self) -> None:
        """Stop for good: a fault's late restart starts nothing."""
        with self._lock:
            self._closed = True
        self._server.stop()

    def posts(self) -> list[Post]:
        with self._lock:
            return list(self._posts)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if environ["REQUEST_METHOD"] == "POST":
            self._record(environ, body)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def _record(self, environ: dict[str, Any], body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        post = Post(
            at=time.monotonic(),
            path=environ.get("PATH_INFO", ""),
            webhook_id=environ.get("HTTP_WEBHOOK_ID", ""),
            job_id=str(payload.get("id", "")),
            event=str(payload.get("event", "")),
            status=str(payload.get("status", "")),
        )
        with self._lock:
            self._posts.append(post)
