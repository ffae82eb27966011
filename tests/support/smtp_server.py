"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for the tests
of signup mails: they read the real message and follow the real link in it."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from backend import bundled_redis

LINK = re.compile(r"https?://\S+/v1/signup/verify\?token=[A-Za-z0-9_-]+")


class Inbox:
    """Every message the server accepted; ``refuse_with`` makes it answer that SMTP reply
    to DATA instead (``"451 4.3.0 try again later"``, ``"550 5.1.1 no such user"``)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse_with: str | None = None
        self.refused = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_with is not None:
            self.refused += 1
            return self.refuse_with
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def link_in(message: EmailMessage) -> str:
    found = LINK.search(text_of(message))
    assert found, f"no verification link in: {text_of(message)!r}"
    return found.group(0)


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """An SMTP server on a free port of 127.0.0.1 (no TLS, no login), and its inbox."""
    inbox = Inbox()
    port = bundled_redis.free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
