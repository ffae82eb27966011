"""Steering and inspecting the simulator from tests, over one reused client (a fresh
client per call costs more than the call).

The simulator's control routes (``/_sim/*``) need the operator's token: every simulator a
test starts is given :data:`CONTROL_TOKEN`, and requests to those routes carry
:data:`CONTROL_HEADERS`."""

from __future__ import annotations

from typing import Any

import httpx

#: The control token of every simulator the tests start.
CONTROL_TOKEN = "test-simulator-control-token"
CONTROL_HEADERS = {"Authorization": f"Bearer {CONTROL_TOKEN}"}

_client = httpx.Client(trust_env=False, timeout=10.0, headers=CONTROL_HEADERS)


def inject_fault(simulator_url: str, **rule: object) -> None:
    """Add a fault rule; fails the test at once if the simulator refuses it."""
    response = _client.post(f"{simulator_url}/_sim/faults", json=rule)
    assert response.status_code == 201, response.text


def stats(simulator_url: str) -> dict[str, int]:
    response = _client.get(f"{simulator_url}/_sim/stats")
    assert response.status_code == 200, response.text
    result: dict[str, int] = response.json()
    return result


def renders(simulator_url: str) -> list[dict[str, Any]]:
    """Every render the farm holds, in any dialect, with what its client sent."""
    response = _client.get(f"{simulator_url}/_sim/renders")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found
