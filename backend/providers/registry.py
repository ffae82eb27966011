"""Which provider adapter serves which catalog ``provider`` name."""

from __future__ import annotations

import httpx

from backend.providers.base import Provider
from backend.providers.simulator import SimulatorProvider
from backend.settings import Settings

#: Provider calls are short API requests; a slow one is treated as transient.
PROVIDER_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def build_providers(settings: Settings, client: httpx.Client) -> dict[str, Provider]:
    return {
        "simulator": SimulatorProvider(
            name="simulator", base_url=settings.simulator_url, client=client
        ),
    }
