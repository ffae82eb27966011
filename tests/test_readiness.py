"""``/readyz`` tells anyone whether genhook is ready, and only the operator why not."""

from __future__ import annotations

import dataclasses

import pytest
from falcon import testing

from backend.api.app import create_app
from backend.broker import build_broker
from backend.context import Context
from backend.queue import Queue
from backend.redis_client import connect
from backend.status_cache import StatusCache

ADMIN_KEY = "adm_9f2c0e7b1d4a"
DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def api_without_redis(ctx: Context) -> testing.TestClient:
    """An API whose Redis cannot be reached, with an operator key configured."""
    dead = connect(DEAD_REDIS)
    down = dataclasses.replace(
        ctx,
        settings=ctx.settings.model_copy(update={"admin_key": ADMIN_KEY}),
        redis=dead,
        cache=StatusCache(dead, terminal_ttl_seconds=60),
        queue=Queue(build_broker(DEAD_REDIS)),
    )
    return testing.TestClient(create_app(down))


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-the-admin-key", f"Basic {ADMIN_KEY}", f"Bearer {ADMIN_KEY}x", "Bearer "],
)
def test_a_failing_check_shows_only_the_status_without_the_admin_key(
    api_without_redis: testing.TestClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}

    ready = api_without_redis.simulate_get("/readyz", headers=headers)

    assert ready.status_code == 503
    assert ready.json == {"status": "unavailable"}
    assert "127.0.0.1" not in ready.text and "Error" not in ready.text


def test_the_operator_sees_which_check_failed_and_why(
    api_without_redis: testing.TestClient,
) -> None:
    ready = api_without_redis.simulate_get(
        "/readyz", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )

    assert ready.status_code == 503
    assert ready.json["status"] == "unavailable"
    assert ready.json["checks"]["database"] == "ok"
    assert ready.json["checks"]["redis"].startswith("error: ")


def test_a_tenant_api_key_is_not_the_admin_key(
    api_without_redis: testing.TestClient, ctx: Context
) -> None:
    from backend.accounts import create_account

    tenant = create_account(ctx, "tenant@example.com")

    ready = api_without_redis.simulate_get(
        "/readyz", headers={"Authorization": f"Bearer {tenant.api_key}"}
    )

    assert ready.json == {"status": "unavailable"}


def test_without_an_admin_key_configured_nobody_sees_the_details(ctx: Context) -> None:
    api = testing.TestClient(create_app(ctx))  # admin_key empty: the default

    assert api.simulate_get("/readyz", headers={"Authorization": "Bearer "}).json == {
        "status": "ok"
    }
    assert api.simulate_get("/readyz").status_code == 200
