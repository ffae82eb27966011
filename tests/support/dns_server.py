"""A real DNS server on 127.0.0.1 (UDP, dnspython), slow on purpose for some names.

Names starting with ``slow.`` are answered after ``delay_seconds``; every other name at
once. Every ``A`` answer is 127.0.0.1 (loopback, which the tests allow webhooks to reach).
:func:`lookup_via` resolves through it, called like ``socket.getaddrinfo``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dns.message
import dns.rdatatype
import dns.resolver
import dns.rrset

from backend.webhooks.name_lookup import Lookup


class SlowDnsServer:
    def __init__(self, delay_seconds: float) -> None:
        self.delay_seconds = delay_seconds
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.queries: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(data, peer), daemon=True).start()

    def _answer(self, data: bytes, peer: Any) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        self.queries.append(question.name.to_text())
        if question.name.to_text().startswith("slow.") and self._stop.wait(self.delay_seconds):
            return
        response = dns.message.make_response(query)
        if question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "127.0.0.1"))
        self.sock.sendto(response.to_wire(), peer)


@contextmanager
def slow_dns_server(delay_seconds: float) -> Iterator[SlowDnsServer]:
    server = SlowDnsServer(delay_seconds)
    server._thread.start()
    try:
        yield server
    finally:
        server._stop.set()
        server._thread.join(5)
        server.sock.close()


def lookup_via(server: SlowDnsServer) -> Lookup:
    """A ``socket.getaddrinfo`` that asks ``server`` (IPv4 only), with no timeout of its own."""

    def lookup(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = server.port
        resolver.timeout = 3600  # wait for the one answer: the server is slow, not lossy
        try:
            answer = resolver.resolve(host, "A", lifetime=3600)
        except dns.resolver.NXDOMAIN:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (r.address, port))
            for r in answer
        ]

    return lookup
