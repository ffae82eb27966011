"""An httpx client that checks the address it actually connects to (SSRF guard, part 2).

Checking a URL's host before sending is not enough: DNS can answer differently a moment
later (rebinding). This client resolves the host itself, refuses every non-public address
that the operator has not allowed, and opens the TCP connection to an address it has just
checked; TLS still verifies the certificate against the host name. Keep-alive connections
are reused only for the same origin, and each was vetted when it was opened.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import httpcore
import httpx

from backend.errors import UnsafeWebhookTarget
from backend.webhooks import url_guard
from backend.webhooks.name_lookup import LookupTimedOut
from backend.webhooks.url_guard import IPAddress, IPNetwork

Resolver = Callable[[str, int], list[IPAddress]]

_deadline = threading.local()


@contextmanager
def total_time_limit(seconds: float) -> Iterator[None]:
    """Bound every connect, read and write of the requests made in this block (in this
    thread) by one overall deadline, so a receiver trickling bytes cannot hold an attempt
    beyond its timeout (httpx's own timeouts apply to each operation separately)."""
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = None


def _within_deadline(timeout: float | None, expired: type[Exception]) -> float | None:
    at = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    remaining = at - time.monotonic()
    if remaining <= 0:
        raise expired("the attempt's time limit was reached")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation respects :func:`total_time_limit`."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _within_deadline(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _within_deadline(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _within_deadline(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class GuardedNetworkBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to vetted addresses."""

    def __init__(
        self,
        allowed: Sequence[IPNetwork],
        resolve: Resolver = url_guard.resolve,
        hint: str = url_guard.ACCOUNT_HINT,
    ):
        self.allowed = list(allowed)
        self.resolve = resolve
        #: What a refusal says the way out is.
        self.hint = hint

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        refused: list[str] = []
        last_error: httpcore.ConnectError | None = None
        try:
            addresses = self.resolve(host, port)
        except LookupTimedOut as exc:  # a transport error like any other to httpx's users
            raise httpcore.ConnectTimeout(str(exc)) from None
        for address in addresses:
            try:
                url_guard.check_address(address, self.allowed)
            except UnsafeWebhookTarget:
                refused.append(str(address))
                continue
            bounded = _within_deadline(timeout, httpcore.ConnectTimeout)
            try:  # connect to the address just checked, never to the name again
                stream = super().connect_tcp(
                    str(address), port, bounded, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                last_error = exc
                continue
            return _DeadlineStream(stream)
        if last_error is not None:
            raise last_error
        raise UnsafeWebhookTarget(
            f"{host} resolves only to non-public addresses not allowed here "
            f"({', '.join(refused)}); {self.hint}"
        )


class GuardedTransport(httpx.HTTPTransport):
    """httpx's default transport on a :class:`GuardedNetworkBackend`.

    httpx 0.28 has no public hook for a network backend (encode/httpx#3180), so the pool
    is rebuilt here; ``tests/test_ssrf.py`` fails if the guard is ever bypassed.
    """

    def __init__(
        self,
        allowed: Sequence[IPNetwork],
        *,
        resolve: Resolver = url_guard.resolve,
        max_connections: int = 100,
        hint: str = url_guard.ACCOUNT_HINT,
    ) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=GuardedNetworkBackend(allowed, resolve, hint),
        )


def guarded_client(
    allowed: Sequence[IPNetwork],
    *,
    resolve: Resolver = url_guard.resolve,
    hint: str = url_guard.ACCOUNT_HINT,
) -> httpx.Client:
    """The webhook client: vetted connections, no redirects, no proxies from the env.
    ``hint`` ends a refusal's message: how the address could be allowed."""
    return httpx.Client(
        transport=GuardedTransport(allowed, resolve=resolve, hint=hint),
        follow_redirects=False,
        trust_env=False,
    )
