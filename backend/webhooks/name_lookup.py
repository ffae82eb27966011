"""Resolve a host name within a deadline.

``socket.getaddrinfo`` (the system resolver: ``/etc/hosts``, nsswitch, resolv.conf) has no
timeout of its own, and a tenant chooses the names genhook resolves: one whose name
servers never answer would hold an API thread for as long as the system resolver retries.
The lookup runs in a thread of its own, and the caller stops waiting at the deadline; the
thread ends when the system resolver gives up. At most :data:`MAX_LOOKUPS_IN_FLIGHT` run
at once in a process, so abandoned lookups cannot pile up.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any

#: What resolves: ``socket.getaddrinfo`` or a function called the same way (tests use a
#: DNS server of their own).
Lookup = Callable[..., list[tuple[Any, ...]]]

#: Seconds a lookup may take when the caller names no deadline of its own.
DEFAULT_TIMEOUT_SECONDS = 3.0
#: Lookups waiting for an answer in one process, at most.
MAX_LOOKUPS_IN_FLIGHT = 64

_in_flight = threading.BoundedSemaphore(MAX_LOOKUPS_IN_FLIGHT)


class LookupTimedOut(Exception):
    """The name did not resolve within the deadline (it may on a later try)."""

    def __init__(self, host: str, seconds: float) -> None:
        super().__init__(f"host {host!r} did not resolve within {seconds:g} s")
        self.host = host
        self.seconds = seconds


def getaddrinfo_within(
    host: str,
    port: int,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    lookup: Lookup | None = None,
) -> list[tuple[Any, ...]]:
    """``lookup(host, port, type=SOCK_STREAM)``'s answer, or ``LookupTimedOut``; the
    lookup's own errors (``socket.gaierror``, ``UnicodeError``) are raised as they are.
    Without ``lookup``, the system resolver (``socket.getaddrinfo``, found at call time)."""
    lookup = lookup or socket.getaddrinfo
    if _is_ip_literal(host):  # nothing to wait for
        return lookup(host, port, type=socket.SOCK_STREAM)
    if not _in_flight.acquire(timeout=timeout):
        raise LookupTimedOut(host, timeout)
    outcome: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(lookup(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the caller, if it still waits
            outcome.append(exc)
        finally:
            _in_flight.release()
            done.set()

    threading.Thread(target=run, name=f"lookup {host[:60]}", daemon=True).start()
    if not done.wait(timeout):
        raise LookupTimedOut(host, timeout)
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    answer: list[tuple[Any, ...]] = result
    return answer


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
