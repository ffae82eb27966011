"""Every answer says nosniff; API answers (secrets included) are never cached, while signed
download links keep their own private caching (issue 11, #15)."""

from __future__ import annotations

from falcon import testing


def test_a_signup_with_its_api_key_is_never_cached(api: testing.TestClient) -> None:
    result = api.simulate_post("/v1/signup", json={"email": "new@example.com"})

    assert result.status_code == 201
    assert result.headers["cache-control"] == "no-store"
    assert result.headers["x-content-type-options"] == "nosniff"


def test_errors_and_reads_carry_the_same_headers(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    for result in (
        api.simulate_get("/v1/account", headers=auth),
        api.simulate_get("/v1/account"),  # 401
        api.simulate_get("/v1/no-such-route"),  # 404
        api.simulate_get("/healthz"),
    ):
        assert result.headers["cache-control"] == "no-store", result.status
        assert result.headers["x-content-type-options"] == "nosniff", result.status


def test_an_endpoint_secret_is_never_cached(api: testing.TestClient, auth: dict[str, str]) -> None:
    created = api.simulate_post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/h"}, headers=auth
    )
    assert created.status_code == 201, created.text
    secret = api.simulate_get(f"/v1/webhook-endpoints/{created.json['id']}/secret", headers=auth)

    assert secret.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    assert secret.headers["cache-control"] == "no-store"
