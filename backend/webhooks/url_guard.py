"""Refuse webhook targets on private, loopback and other non-public networks (SSRF guard).

A URL is checked when it is submitted or registered; at delivery time
``guarded_transport`` checks again, against the very address it connects to, because what
a host name resolves to can change (DNS rebinding). Which non-public networks are allowed
depends on the account (``targets.py``): those an operator allowed every account
(``GENHOOK_WEBHOOK_ALLOWED_NETWORKS``), plus ``GENHOOK_PRIVATE_WEBHOOK_NETWORKS`` for
accounts allowed private targets.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from backend.errors import Unavailable, UnsafeWebhookTarget, ValidationFailed
from backend.webhooks.name_lookup import (
    DEFAULT_TIMEOUT_SECONDS,
    Lookup,
    LookupTimedOut,
    getaddrinfo_within,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: What a client that waited for a name too long is told to wait before retrying.
LOOKUP_RETRY_AFTER_SECONDS = 5

#: Carrier-grade NAT, which ``ipaddress`` does not count as private.
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


#: NAT64's well-known prefix: the last 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address.is_site_local:  # fec0::/10, deprecated but still routed by some stacks
            return False
        # An IPv6 address that carries an IPv4 one (6to4, Teredo, NAT64) reaches that one
        # too: it is public only if both are.
        if any(not is_public(inner) for inner in _embedded_ipv4(address)):
            return False
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE)
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def resolve(
    host: str,
    port: int,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    lookup: Lookup | None = None,
) -> list[IPAddress]:
    """Every address ``host`` resolves to; ``LookupTimedOut`` past ``timeout``."""
    try:
        infos = getaddrinfo_within(host, port, timeout=timeout, lookup=lookup)
    except socket.gaierror as exc:
        raise UnsafeWebhookTarget(f"host {host!r} does not resolve ({exc.strerror})") from None
    except UnicodeError:  # IDNA refuses empty or over-long labels
        raise UnsafeWebhookTarget(f"host {host!r} is not a valid host name") from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]


#: What a refusal of a tenant's URL says the way out is.
ACCOUNT_HINT = (
    "an operator can allow private targets for the account "
    "(genhook accounts set --allow-private-webhooks)"
)


def check_address(
    address: IPAddress, allowed: Sequence[IPNetwork], hint: str = ACCOUNT_HINT
) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if is_public(address) or any(address in network for network in allowed):
        return
    raise UnsafeWebhookTarget(
        f"resolves to {address}, a non-public address not allowed here; {hint}"
    )


def check_url(
    url: str,
    allowed: Sequence[IPNetwork],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    lookup: Lookup | None = None,
) -> None:
    """Raise ``UnsafeWebhookTarget`` unless every address the URL's host resolves to is
    public or explicitly allowed (``LookupTimedOut`` if it does not resolve in time)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for address in resolve(host, port, timeout=timeout, lookup=lookup):
        check_address(address, allowed)


def require_public(
    url: str,
    allowed: Sequence[IPNetwork],
    field: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    lookup: Lookup | None = None,
) -> None:
    """:func:`check_url` for client input: a 422 problem naming ``field``, or a 503 naming
    it when the host name did not resolve within ``timeout`` (a retry may succeed: the
    URL is not known to be wrong)."""
    try:
        check_url(url, allowed, timeout=timeout, lookup=lookup)
    except UnsafeWebhookTarget as exc:
        raise ValidationFailed.for_field(field, str(exc)) from None
    except LookupTimedOut as exc:
        raise Unavailable.for_field(
            field, f"{exc}; retry later", retry_after_seconds=LOOKUP_RETRY_AFTER_SECONDS
        ) from None
