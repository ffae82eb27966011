"""Adapters against the simulator's dialects over real HTTP on 127.0.0.1.

No database or Redis here: an adapter is plain translation, so these tests build one from
settings that aim it at a simulator started for the test.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from backend.providers.base import ImageInput, Provider
from backend.providers.registry import build_providers, provider_timeout
from backend.settings import Settings
from backend.simulator.app import create_app as create_simulator
from backend.simulator.credentials import all_provider_settings
from tests.support.faults import CONTROL_TOKEN
from tests.support.wsgi_server import serve_wsgi

#: How long a simulated render takes in these tests.
RENDER_SECONDS = 0.4


@pytest.fixture
def sim() -> Iterator[str]:
    with serve_wsgi(
        create_simulator(render_seconds=RENDER_SECONDS, control_token=CONTROL_TOKEN)
    ) as url:
        yield url


def sim_settings(sim_url: str, **extra: object) -> Settings:
    return Settings.model_validate(
        {**all_provider_settings(sim_url), "provider_timeout_seconds": 1.0, **extra}
    )


@pytest.fixture
def provider_client() -> Iterator[httpx.Client]:
    """The adapters' HTTP client, with a 1 s timeout: a fault that hangs longer is lost."""
    with httpx.Client(timeout=provider_timeout(sim_settings("http://x")), trust_env=False) as c:
        yield c


def adapter_for(name: str, sim_url: str, client: httpx.Client, **extra: object) -> Provider:
    return build_providers(sim_settings(sim_url, **extra), client)[name]


def png(width: int = 640, height: int = 360, color: str = "teal") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def image_input(url: str | None = None, width: int = 640, height: int = 360) -> ImageInput:
    """A first/last frame as genhook hands it to adapters (``url`` None: send the bytes)."""
    return ImageInput(
        data=png(width, height), content_type="image/png", width=width, height=height, url=url
    )
