"""A host name that resolves slowly cannot hold a request (issue 11, finding 5).

Given a real DNS server on 127.0.0.1 that takes 10 s to answer names under ``slow.``,
when a tenant submits a generation or registers an endpoint whose URL names such a host,
then the API answers 503 with ``Retry-After`` naming the field within the DNS timeout,
and nothing is charged or stored; a name the same server answers at once is accepted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from falcon import testing

from backend.accounts import NewAccount, get_account
from backend.context import Context
from tests.support.dns_server import SlowDnsServer, lookup_via, slow_dns_server

DNS_TIMEOUT = 0.5
SERVER_DELAY = 10.0


@pytest.fixture
def dns_server(ctx: Context) -> Iterator[SlowDnsServer]:
    with slow_dns_server(SERVER_DELAY) as server:
        ctx.name_lookup = lookup_via(server)
        ctx.settings = ctx.settings.model_copy(update={"dns_timeout_seconds": DNS_TIMEOUT})
        yield server


def generation(webhook_url: str) -> dict[str, str]:
    return {"model": "kling-v3", "prompt": "a cat", "duration": "5s", "webhook_url": webhook_url}


def test_a_webhook_host_that_resolves_too_slowly_is_a_503_naming_the_field_and_costs_nothing(
    ctx: Context,
    api: testing.TestClient,
    auth: dict[str, str],
    account: NewAccount,
    dns_server: SlowDnsServer,
) -> None:
    began = time.monotonic()
    result = api.simulate_post(
        "/v1/video/generations", json=generation("http://slow.example:9000/hook"), headers=auth
    )
    took = time.monotonic() - began

    assert result.status_code == 503, result.text
    assert result.headers["retry-after"] == "5"
    assert [e["field"] for e in result.json["errors"]] == ["webhook_url"]
    assert "did not resolve within 0.5 s" in result.json["detail"]
    assert DNS_TIMEOUT <= took < DNS_TIMEOUT + 1.0
    assert "slow.example." in dns_server.queries  # the real server was asked
    assert get_account(ctx, account.account.id).credits == account.account.credits
    assert api.simulate_get("/v1/video/generations", headers=auth).json["data"] == []

    # A name the same server answers at once goes through the same lookup and is accepted.
    fast = api.simulate_post(
        "/v1/video/generations", json=generation("http://fast.example:9000/hook"), headers=auth
    )
    assert fast.status_code == 202, fast.text


def test_an_endpoint_url_that_resolves_too_slowly_is_a_503_naming_url(
    api: testing.TestClient, auth: dict[str, str], dns_server: SlowDnsServer
) -> None:
    began = time.monotonic()
    result = api.simulate_post(
        "/v1/webhook-endpoints", json={"url": "http://slow.example/hook"}, headers=auth
    )

    assert result.status_code == 503, result.text
    assert [e["field"] for e in result.json["errors"]] == ["url"]
    assert time.monotonic() - began < DNS_TIMEOUT + 1.0
    assert api.simulate_get("/v1/webhook-endpoints", headers=auth).json["data"] == []
