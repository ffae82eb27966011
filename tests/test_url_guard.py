"""The SSRF guard: which addresses count as public, and which URLs may be webhook targets."""

from __future__ import annotations

import ipaddress

import pytest

from backend.errors import UnsafeWebhookTarget
from backend.webhooks.url_guard import check_address, check_url, is_public

NET_127 = ipaddress.ip_network("127.0.0.0/8")
NET_V6_LOOPBACK = ipaddress.ip_network("::1/128")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("172.31.255.254", False),
        ("192.168.1.1", False),
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        # IPv6 forms that embed an IPv4 address reach it: private inside is private
        ("2002:0a00:0001::1", False),  # 6to4 of 10.0.0.1
        ("2002:7f00:0001::1", False),  # 6to4 of 127.0.0.1
        ("2002:0808:0808::1", True),  # 6to4 of 8.8.8.8
        ("64:ff9b::10.0.0.1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b::169.254.169.254", False),  # NAT64 of the metadata address
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo, client 10.0.0.1
        ("fec0::1", False),  # site-local
        ("fec0:1234::abcd", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_the_public_neighbours_of_carrier_grade_nat_are_public() -> None:
    # 100.64.0.0/10 is refused, but not the addresses either side of it
    assert is_public(ipaddress.ip_address("100.63.255.255"))
    assert is_public(ipaddress.ip_address("100.128.0.1"))


def test_localhost_is_refused_when_nothing_is_allowed() -> None:
    with pytest.raises(UnsafeWebhookTarget, match="non-public address"):
        check_url("http://localhost/", [])


def test_localhost_is_accepted_when_both_loopback_networks_are_allowed() -> None:
    check_url("http://localhost/", [NET_127, NET_V6_LOOPBACK])  # does not raise


@pytest.mark.parametrize(
    ("address", "accepted"), [("127.0.0.1", True), ("::1", False), ("10.0.0.5", False)]
)
def test_allowing_ipv4_loopback_lets_only_its_own_addresses_through(
    address: str, accepted: bool
) -> None:
    # Given only 127.0.0.0/8 is allowed
    try:
        check_address(ipaddress.ip_address(address), [NET_127])
    except UnsafeWebhookTarget:
        outcome = False
    else:
        outcome = True
    assert outcome is accepted


def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(UnsafeWebhookTarget, match="does not resolve"):
        check_url("https://nonexistent.invalid/hook", [])


def test_a_host_name_that_cannot_be_encoded_is_refused() -> None:
    with pytest.raises(UnsafeWebhookTarget):
        check_url("http://" + "a" * 64 + ".example/", [])
