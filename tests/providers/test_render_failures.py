"""A render that dies mid-way, told apart by whose fault it was, for every provider.

The lead's failover re-renders a job elsewhere when the provider's own trouble killed it
(``capacity``, ``provider_transient``) and fails and refunds it when the request did
(``content_policy``). Each case injects a render fault of one kind into the simulator, in
the provider's own dialect, and reads what the adapter makes of the failed task. What
each provider really says is in its adapter's docstring.
"""

from __future__ import annotations

import httpx
import pytest

from backend.providers.base import (
    RENDER_CAPACITY,
    RENDER_TRANSIENT,
    RETRYABLE_RENDER_FAILURES,
    Provider,
    RenderRequest,
    RenderState,
    RenderStatus,
)
from tests.conftest import wait_until
from tests.providers.conftest import adapter_for
from tests.support.faults import inject_fault

pytestmark = pytest.mark.timeout(30)

#: A model each provider's dialect renders, as genhook's catalog would send it.
MODELS = {
    "kling": "kling-v3",
    "fal": "fal-ai/kling-video/o3/pro/text-to-video",
    "replicate": "wan-video/wan-2.5-t2v",
    "runway": "gen4.5",
    "luma": "ray-2",
    "byteplus": "seedance-1-0-pro-250528",
    "gemini": "veo-3.1-fast-generate-preview",
    "minimax": "MiniMax-Hailuo-02",
}

#: What each fault kind must come out as, whichever provider reports it.
EXPECTED = {
    "capacity": RENDER_CAPACITY,
    "internal": RENDER_TRANSIENT,
    "content_policy": "content_policy",
}


def request(provider: str) -> RenderRequest:
    return RenderRequest(
        job_id=f"vgen_{provider}_render_failure",
        model=MODELS[provider],
        prompt="A lighthouse at dusk, waves rolling in",
        duration_seconds=5,
        aspect_ratio="16:9",
    )


def failed_render(adapter: Provider, handle: str) -> RenderStatus:
    """Poll until the render has ended; it must have ended failed."""
    status: RenderStatus = wait_until(
        lambda: (s := adapter.poll(handle)).state.is_terminal and s, timeout=5
    )
    assert status.state is RenderState.FAILED, status
    return status


def render_with_fault(
    sim: str, client: httpx.Client, provider: str, **fault: object
) -> RenderStatus:
    """Given a render fault in the provider's dialect, when a render is submitted, then
    how the adapter reports it once it has died mid-render."""
    adapter = adapter_for(provider, sim, client)
    inject_fault(sim, on="render", dialect=provider, at_phase="rendering", **fault)
    return failed_render(adapter, adapter.submit(request(provider)))


@pytest.mark.parametrize("kind", EXPECTED)
@pytest.mark.parametrize("provider", MODELS)
def test_a_render_that_dies_mid_way_says_whose_fault_it_was(
    sim: str, provider_client: httpx.Client, provider: str, kind: str
) -> None:
    failed = render_with_fault(sim, provider_client, provider, kind=kind)

    assert failed.error_code == EXPECTED[kind]
    assert failed.error_message


@pytest.mark.parametrize("provider", MODELS)
def test_a_failure_nothing_explains_is_not_retried_elsewhere(
    sim: str, provider_client: httpx.Client, provider: str
) -> None:
    """A rule without a kind is the provider's generic failure, in its own words."""
    failed = render_with_fault(sim, provider_client, provider, code="render_broke")

    assert failed.error_code == "provider_failed"
    assert failed.error_code not in RETRYABLE_RENDER_FAILURES


# -- provider signals beyond the three kinds ------------------------------------------------


@pytest.mark.parametrize(
    ("failure_code", "error_code"),
    [
        ("INPUT_PREPROCESSING.INTERNAL", RENDER_TRANSIENT),
        ("INTERNAL", RENDER_TRANSIENT),
        ("ASSET.INVALID", "invalid_request"),
        ("INPUT_PREPROCESSING.SAFETY.TEXT", "content_policy"),
    ],
)
def test_runway_failure_codes_of_its_task_failures_page(
    sim: str, provider_client: httpx.Client, failure_code: str, error_code: str
) -> None:
    failed = render_with_fault(sim, provider_client, "runway", code=failure_code)

    assert failed.error_code == error_code
    assert failure_code in str(failed.error_message)


def test_a_kling_task_failed_for_its_input_is_an_invalid_request(
    sim: str, provider_client: httpx.Client
) -> None:
    failed = render_with_fault(sim, provider_client, "kling", message="Image pixel is invalid")

    assert (failed.error_code, failed.error_message) == (
        "invalid_request",
        "Image pixel is invalid",
    )


def test_a_fal_model_error_marked_retryable_is_transient(
    sim: str, provider_client: httpx.Client
) -> None:
    failed = render_with_fault(sim, provider_client, "fal", kind="server_error")

    assert failed.error_code == RENDER_TRANSIENT


@pytest.mark.parametrize(
    ("ark_code", "error_code"),
    [("ModelLoadingError", RENDER_CAPACITY), ("InvalidParameter", "invalid_request")],
)
def test_seedance_failed_task_codes(
    sim: str, provider_client: httpx.Client, ark_code: str, error_code: str
) -> None:
    failed = render_with_fault(sim, provider_client, "byteplus", code=ark_code)

    assert failed.error_code == error_code
    assert str(failed.error_message).startswith(f"{ark_code}: ")
