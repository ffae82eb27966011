"""The credentials every simulator dialect accepts, and the settings that point genhook's
adapters at the simulator.

``genhook up`` uses :func:`provider_settings` for each provider the operator has not
configured, so the demo runs the real adapters against the simulator; tests do the same.
A real provider's credentials in the environment always win.
"""

from __future__ import annotations

KLING_ACCESS_KEY = "sim-kling-access-key"
KLING_SECRET_KEY = "sim-kling-secret-key-0123456789abcdef"
FAL_KEY = "sim-fal-key-id:sim-fal-key-secret"
FAL_USER_ID = "sim-fal-user"
REPLICATE_API_TOKEN = "r8_simulator_token_0123456789abcdef"
#: Standard Webhooks secret the Replicate dialect signs callbacks with (base64 after whsec_).
REPLICATE_WEBHOOK_SECRET = "whsec_c2ltdWxhdG9yLXJlcGxpY2F0ZS13ZWJob29rLXNlY3JldA=="
RUNWAY_API_KEY = "key_simulator_runway_0123456789abcdef"
LUMA_API_KEY = "luma-simulator-0123456789abcdef"
BYTEPLUS_API_KEY = "sim-byteplus-ark-key-0123456789"
GEMINI_API_KEY = "AIzaSimulatorGeminiKey0123456789"
MINIMAX_API_KEY = "sim-minimax-key-0123456789abcdef"

#: Every provider genhook has an adapter for, and where its dialect is mounted.
PREFIXES = {
    "kling": "/kling",
    "fal": "/fal",
    "replicate": "/replicate",
    "runway": "/runway",
    "luma": "/luma",
    "byteplus": "/byteplus",
    "gemini": "/gemini",
    "minimax": "/minimax",
}


def provider_settings(simulator_url: str) -> dict[str, dict[str, str]]:
    """Per provider, the settings (field names of ``Settings``) that aim it at the simulator."""
    sim = simulator_url.rstrip("/")
    return {
        "kling": {
            "kling_base_url": f"{sim}/kling",
            "kling_access_key": KLING_ACCESS_KEY,
            "kling_secret_key": KLING_SECRET_KEY,
        },
        "fal": {
            "fal_queue_url": f"{sim}/fal",
            "fal_key": FAL_KEY,
            "fal_jwks_url": f"{sim}/fal/.well-known/jwks.json",
        },
        "replicate": {
            "replicate_base_url": f"{sim}/replicate",
            "replicate_api_token": REPLICATE_API_TOKEN,
            "replicate_webhook_secret": REPLICATE_WEBHOOK_SECRET,
        },
        "runway": {"runway_base_url": f"{sim}/runway", "runway_api_key": RUNWAY_API_KEY},
        "luma": {"luma_base_url": f"{sim}/luma/dream-machine/v1", "luma_api_key": LUMA_API_KEY},
        "byteplus": {
            "byteplus_base_url": f"{sim}/byteplus/api/v3",
            "byteplus_api_key": BYTEPLUS_API_KEY,
        },
        "gemini": {"gemini_base_url": f"{sim}/gemini", "gemini_api_key": GEMINI_API_KEY},
        "minimax": {"minimax_base_url": f"{sim}/minimax", "minimax_api_key": MINIMAX_API_KEY},
    }


def all_provider_settings(simulator_url: str) -> dict[str, str]:
    """Every provider aimed at the simulator, as one flat mapping of settings."""
    flat: dict[str, str] = {}
    for values in provider_settings(simulator_url).values():
        flat.update(values)
    return flat
