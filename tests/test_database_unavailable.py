"""A database genhook cannot reach is a 503 with Retry-After, never a 500."""

from __future__ import annotations

import dataclasses

import pytest
from falcon import testing

from backend import bundled_redis
from backend.api.app import create_app
from backend.context import Context
from backend.store import Store

REQUESTS = [
    ("GET", "/v1/account", None),
    ("POST", "/v1/video/generations", {"model": "kling-v3", "prompt": "a porch at dusk"}),
    ("GET", "/v1/video/generations", None),
    ("POST", "/v1/signup", {"email": "new@example.com"}),
]


@pytest.fixture
def down_api(ctx: Context) -> testing.TestClient:
    """The API of ``ctx`` with its database on a port where nothing listens."""
    nowhere = f"postgresql://postgres@127.0.0.1:{bundled_redis.free_port()}/genhook"
    return testing.TestClient(create_app(dataclasses.replace(ctx, store=Store(nowhere))))


@pytest.mark.parametrize(("method", "path", "body"), REQUESTS, ids=[r[1] for r in REQUESTS])
def test_an_unreachable_database_is_a_503_to_retry_not_a_500(
    down_api: testing.TestClient,
    auth: dict[str, str],
    method: str,
    path: str,
    body: dict | None,
) -> None:
    result = down_api.simulate_request(method, path, json=body, headers=auth)

    assert result.status_code == 503, result.text
    assert result.headers["retry-after"] == "5"
    assert result.headers["content-type"] == "application/problem+json"
    assert result.json["type"] == "urn:genhook:problem:database-unavailable"


def test_the_catalog_is_still_served_without_the_database(down_api: testing.TestClient) -> None:
    result = down_api.simulate_get("/v1/models")
    assert result.status_code == 200
    assert any(m["id"] == "kling-v3" for m in result.json["data"])


def test_the_contract_says_which_operations_may_answer_503(api: testing.TestClient) -> None:
    paths = api.simulate_get("/openapi.json").json["paths"]
    assert "503" in paths["/v1/video/generations"]["post"]["responses"]
    assert "503" in paths["/v1/account"]["get"]["responses"]
    assert "503" not in paths["/healthz"]["get"]["responses"]
    assert "503" not in paths["/v1/models"]["get"]["responses"]
