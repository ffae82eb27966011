"""Which address a request comes from, for limits that count per client (signups).

The peer's address, unless the peer is one of the operator's reverse proxies
(``GENHOOK_TRUSTED_PROXIES``): then the right-most ``X-Forwarded-For`` address that is not
a trusted proxy, since every address left of the first untrusted one may be made up by the
client. With no trusted proxies the header is ignored: anyone can send it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import falcon

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(req: falcon.Request, trusted: Sequence[IPNetwork]) -> str:
    peer = req.remote_addr or ""
    if not _is_trusted(peer, trusted):
        return peer
    forwarded = req.get_header("X-Forwarded-For") or ""
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if _parse(hop) is None:
            # Not an address: a trusted proxy would not have written it, so everything
            # from here leftwards is the client's word. Count the request to the proxy.
            return peer
        if not _is_trusted(hop, trusted):
            return str(_parse(hop))
    # Every hop is a trusted proxy (or there are none): the left-most is the closest to
    # the client that we know of.
    return str(_parse(hops[0])) if hops else peer


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in network for network in trusted)
