"""Schemathesis against the live API: whatever a client sends, genhook answers as its own
OpenAPI document (``/openapi.json``) says: never a 5xx, only declared status codes and
content types, and bodies and headers that match their schemas.

The API runs on a real socket, with real Redis, SQLite, a Dramatiq worker and the simulator.
Before the fuzzing starts, one real generation (with a first-frame image, a webhook URL and
a subscribed endpoint) runs to completion, so the fuzzer meets real jobs, deliveries with
attempts, a kept output and a stored image, not only 404s: their ids, and valid signed
links, are mixed into the generated path and query parameters.

Generated requests must not make genhook reach beyond this machine:

- the account the fuzzer uses spent its only credits on that generation, so everything it
  submits is a 402 and no job is created (a completed job cannot be refunded);
- host names resolve without asking any DNS server, to one public address, so URLs pass
  the SSRF guard and reach the code behind it;
- genhook's outbound client (webhooks, ``image_url`` fetches, output downloads) connects to
  the simulator and nowhere else; every other connection is refused (the 402 comes before
  any ``image_url`` is fetched, but this keeps a future change from leaking).
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis.configuration
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.accounts import create_account
from backend.api.app import create_app
from backend.context import Context
from backend.images import links
from backend.settings import Settings
from backend.store.images import get_image
from tests.conftest import make_settings, wait_until
from tests.providers.conftest import png
from tests.support.wsgi_server import serve_wsgi

#: Where every host name "resolves" during the run: a public address (example.com's), so the
#: SSRF guard lets URLs through. Nothing connects to it (see :class:`SimulatorOnly`).
PUBLIC_ADDRESS = "93.184.215.14"
#: Generated examples per operation and mode, on top of the coverage phase's boundary
#: cases; the whole run stays well under a minute on two cores.
MAX_EXAMPLES = 25
#: A fixed seed, and derandomized Hypothesis, so CI sends the same requests every time.
SEED = 20_240_601
ALL_EVENTS = [
    "video.generation.completed",
    "video.generation.failed",
    "video.generation.canceled",
    "video.generation.status_changed",
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# Hypothesis keeps caches in its home directory: under var/ (ignored by git), not at the root.
hypothesis.configuration.set_hypothesis_home_dir(
    Path(__file__).resolve().parent.parent / "var" / "hypothesis"
)

# schemathesis' own strategies use `random`, which Hypothesis now frowns upon; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")

_real_getaddrinfo = socket.getaddrinfo


def offline_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """``socket.getaddrinfo`` that never asks a DNS server: numeric hosts are parsed as the
    system parses them (``AI_NUMERICHOST``), every name gets :data:`PUBLIC_ADDRESS`."""
    family, kind, proto = [*args, 0, 0, 0][:3]
    try:
        return _real_getaddrinfo(host, port, family, kind, proto, socket.AI_NUMERICHOST)
    except socket.gaierror:
        if host is None:
            raise
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, int(port or 0)))]


class SimulatorOnly(httpx.HTTPTransport):
    """The fuzzed API's way out: the simulator's origin answers, every other connection is
    refused before it is opened."""

    def __init__(self, simulator_url: str) -> None:
        super().__init__()
        self.origin = httpx.URL(simulator_url)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url, origin = request.url, self.origin
        if (url.scheme, url.host, url.port) != (origin.scheme, origin.host, origin.port):
            raise httpx.ConnectError(f"the fuzz test opens no connection to {url}", request=request)
        return super().handle_request(request)


@dataclass(frozen=True)
class Seeded:
    """The fuzzing account's key, and what it owns: values for path parameters and the
    query strings of valid signed links."""

    api_key: str
    path: dict[str, str]
    #: An endpoint for the fuzzer to delete, so the one with deliveries stays.
    spare_endpoint_id: str
    output_link: dict[str, str]
    image_link: dict[str, str]


@pytest.fixture
def settings(database_url: str, redis_url: str, simulator: str, tmp_path: Path) -> Settings:
    # Only public networks (the default), and signups start with nothing to spend.
    return make_settings(
        database_url,
        redis_url,
        simulator,
        webhook_allowed_networks=[],
        signup_credits=0,
        storage_url=f"file://{tmp_path}/outputs",
    )


@pytest.fixture
def offline(ctx: Context, simulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """``ctx`` with DNS answered locally and an outbound client that reaches the simulator
    only."""
    monkeypatch.setattr(socket, "getaddrinfo", offline_getaddrinfo)
    ctx.webhook_client.close()
    ctx.webhook_client = httpx.Client(transport=SimulatorOnly(simulator), trust_env=False)
    ctx.output_client.close()
    ctx.output_client = httpx.Client(transport=SimulatorOnly(simulator), trust_env=False)
    yield ctx


@pytest.fixture
def live_api(offline: Context, worker: object) -> Iterator[str]:
    with serve_wsgi(create_app(offline)) as url:
        yield url


@pytest.fixture
def seeded(request: pytest.FixtureRequest, offline: Context, live_api: str) -> Seeded:
    """One generation run to the end by the account the fuzzer will use, paid with all of
    its credits; its webhooks fail (the outbound client refuses) after every retry."""
    price = offline.catalog.models["kling-v3"].price(5)
    account = create_account(offline, "fuzzer@example.com", credits=price)
    client = httpx.Client(base_url=live_api, headers={"Authorization": f"Bearer {account.api_key}"})
    request.addfinalizer(client.close)
    endpoint, spare = (
        client.post("/v1/webhook-endpoints", json={"url": url, "events": ALL_EVENTS}).json()
        for url in ("https://hooks.example/genhook", "https://spare.example/genhook")
    )
    image = "data:image/png;base64," + base64.b64encode(png(400, 300)).decode()
    job = client.post(
        "/v1/video/generations",
        json={
            "model": "kling-v3",
            "prompt": "Product reveal on white",
            "webhook_url": "https://app.example/hooks/genhook",
            "image_url": image,
        },
    ).json()

    def finished() -> list[dict[str, Any]] | None:
        if client.get(f"/v1/video/generations/{job['id']}").json()["status"] != "completed":
            return None
        found = client.get(f"/v1/video/generations/{job['id']}/deliveries").json()["data"]
        return found if found and all(d["status"] == "failed" for d in found) else None

    deliveries = wait_until(finished, timeout=20)
    done = client.get(f"/v1/video/generations/{job['id']}").json()
    assert client.get("/v1/account").json()["credits"] == 0
    with offline.store.begin() as conn:
        stored = get_image(conn, done["image_id"])
    assert stored is not None
    image_link = httpx.URL(links.signed_link("", stored, offline.now(), 3600))
    return Seeded(
        api_key=account.api_key,
        path={
            "job_id": job["id"],
            "endpoint_id": endpoint["id"],
            "delivery_id": deliveries[0]["id"],
            "image_id": stored.id,
        },
        spare_endpoint_id=spare["id"],
        output_link=dict(httpx.URL(done["output_url"]).params),
        image_link=dict(image_link.params),
    )


@pytest.fixture
def api_schema(live_api: str, seeded: Seeded) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    schema.config.update(headers={"Authorization": f"Bearer {seeded.api_key}"})
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
    )
    schema.config.seed = SEED
    links_by_operation = {"getOutput": seeded.output_link, "getImageInput": seeded.image_link}

    @schema.hook
    def before_generate_path_parameters(
        context: schemathesis.HookContext, strategy: st.SearchStrategy
    ) -> st.SearchStrategy:
        """Sometimes the ids of what the account owns instead of generated ones."""
        assert context.operation is not None
        names = [p.name for p in context.operation.path_parameters]
        if not names or not set(names) <= seeded.path.keys():
            return strategy
        owned = {name: seeded.path[name] for name in names}
        if context.operation.method.lower() == "delete":
            owned["endpoint_id"] = seeded.spare_endpoint_id
        return strategy | st.just(owned)

    @schema.hook
    def before_generate_query(
        context: schemathesis.HookContext, strategy: st.SearchStrategy
    ) -> st.SearchStrategy:
        """Sometimes a valid signed link's query instead of a generated one."""
        assert context.operation is not None
        link = links_by_operation.get(context.operation.definition.raw.get("operationId", ""))
        return strategy if link is None else strategy | st.just(link)

    return schema


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's fixture loader reads ``Function._nodeid``, which pytest 9.2 no
    longer has; give it the node id it expects."""
    request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_answer_matches_the_openapi_document(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
