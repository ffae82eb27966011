"""Steering the simulator from tests."""

from __future__ import annotations

import httpx


def inject_fault(simulator_url: str, **rule: object) -> None:
    """Add a fault rule; fails the test at once if the simulator refuses it."""
    response = httpx.post(f"{simulator_url}/_sim/faults", json=rule)
    assert response.status_code == 201, response.text


def stats(simulator_url: str) -> dict[str, int]:
    result: dict[str, int] = httpx.get(f"{simulator_url}/_sim/stats").json()
    return result
