"""Calls to the API that many stories make, as a client would make them."""

from __future__ import annotations

from falcon import testing

from tests.conftest import wait_until

GENERATIONS = "/v1/video/generations"
#: A request that renders quickly on the simulator.
GENERATION = {"model": "kling-v3", "prompt": "Product reveal on white", "duration": "5s"}


def submit(api: testing.TestClient, auth: dict[str, str], **fields: object) -> dict:
    """POST a generation (``fields`` added to or replacing :data:`GENERATION`); its 202 body."""
    result = api.simulate_post(GENERATIONS, json={**GENERATION, **fields}, headers=auth)
    assert result.status_code == 202, result.text
    return dict(result.json)


def wait_for_status(
    api: testing.TestClient, auth: dict[str, str], job_id: str, status: str
) -> dict:
    def current() -> dict | None:
        job = api.simulate_get(f"{GENERATIONS}/{job_id}", headers=auth).json
        return job if job["status"] == status else None

    return wait_until(current)


def deliveries_of(api: testing.TestClient, auth: dict[str, str], job_id: str) -> list[dict]:
    result = api.simulate_get(f"{GENERATIONS}/{job_id}/deliveries", headers=auth)
    assert result.status_code == 200, result.text
    return list(result.json["data"])


def read_delivery(api: testing.TestClient, auth: dict[str, str], delivery_id: str) -> dict:
    result = api.simulate_get(f"/v1/deliveries/{delivery_id}", headers=auth)
    assert result.status_code == 200, result.text
    return dict(result.json)
