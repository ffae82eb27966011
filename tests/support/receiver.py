"""A webhook receiver for tests: records every request it gets and answers as scripted.

By default every request gets ``status``; :meth:`WebhookReceiver.reply` queues answers
(a status, headers, a body, a delay before answering) used in order, one per request.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: str = "200 OK"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b"received"
    #: Seconds to wait before answering (after reading the request).
    delay: float = 0.0


class WebhookReceiver:
    """A WSGI app; serve it with ``serve_wsgi`` and point webhooks at the URL."""

    def __init__(self, status: str = "200 OK") -> None:
        self.status = status
        self.requests: list[Received] = []
        self._replies: deque[Reply] = deque()
        self._changed = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        request = Received(
            method=environ["REQUEST_METHOD"],
            path=environ["PATH_INFO"],
            query=environ.get("QUERY_STRING", ""),
            headers=headers,
            body=environ["wsgi.input"].read(length),
        )
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
            reply = self._replies.popleft() if self._replies else Reply(self.status)
        if reply.delay:
            time.sleep(reply.delay)
        start_response(reply.status, [("Content-Type", "text/plain"), *reply.headers])
        return [reply.body]

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order."""
        with self._changed:
            self._replies.extend(replies)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"got {len(self.requests)} webhooks, wanted {count}")
                self._changed.wait(remaining)
            return list(self.requests)
