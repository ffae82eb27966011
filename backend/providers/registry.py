"""Which adapter serves which catalog ``provider`` name: every provider whose credentials
are set, plus the native simulator when ``GENHOOK_SIMULATOR_FALLBACK`` asks for it."""

from __future__ import annotations

import httpx

from backend.providers import byteplus, fal, gemini, kling, luma, minimax, replicate, runway
from backend.providers.base import Provider
from backend.providers.simulator import SimulatorProvider
from backend.settings import Settings

#: Each adapter module's ``build``: the adapter, or None when its provider is not configured.
ADAPTERS = (kling, fal, replicate, runway, luma, byteplus, gemini, minimax)

#: The native simulator's name in the catalog's eyes.
SIMULATOR = "simulator"

#: Every ``provider`` a catalog route may name.
PROVIDER_NAMES = (*(m.__name__.rsplit(".", 1)[-1] for m in ADAPTERS), SIMULATOR)


def provider_timeout(settings: Settings) -> httpx.Timeout:
    """Provider calls are short API requests; a slow one is treated as transient."""
    return httpx.Timeout(settings.provider_timeout_seconds, connect=5.0)


def build_providers(settings: Settings, client: httpx.Client) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for module in ADAPTERS:
        adapter = module.build(settings, client)
        if adapter is not None:
            providers[adapter.name] = adapter
    if settings.simulator_fallback:
        providers[SIMULATOR] = SimulatorProvider(
            name=SIMULATOR, base_url=settings.simulator_url, client=client
        )
    return providers
