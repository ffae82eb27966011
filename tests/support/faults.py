"""Steering and inspecting the simulator from tests, over one reused client (a fresh
client per call costs more than the call)."""

from __future__ import annotations

from typing import Any

import httpx

_client = httpx.Client(trust_env=False, timeout=10.0)


def inject_fault(simulator_url: str, **rule: object) -> None:
    """Add a fault rule; fails the test at once if the simulator refuses it."""
    response = _client.post(f"{simulator_url}/_sim/faults", json=rule)
    assert response.status_code == 201, response.text


def stats(simulator_url: str) -> dict[str, int]:
    result: dict[str, int] = _client.get(f"{simulator_url}/_sim/stats").json()
    return result


def renders(simulator_url: str) -> list[dict[str, Any]]:
    """Every render the farm holds, in any dialect, with what its client sent."""
    found: list[dict[str, Any]] = _client.get(f"{simulator_url}/_sim/renders").json()
    return found
