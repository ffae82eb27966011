"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for the tests
of signup mails: they read the real message and follow the real link in it."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def self_signed_tls(directory: Path) -> ssl.SSLContext:
    """A server TLS context with a certificate for 127.0.0.1 that nobody trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@contextmanager
def smtp_server(tls: ssl.SSLContext | None = None) -> Iterator[tuple[Inbox, int]]:
    """An SMTP server on a free port of 127.0.0.1, and its inbox: no TLS, or with ``tls``
    STARTTLS offered and required before any mail."""
    inbox = Inbox()
    port = bundled_redis.free_port()
    options: dict[str, Any] = {"tls_context": tls, "require_starttls": True} if tls else {}
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
