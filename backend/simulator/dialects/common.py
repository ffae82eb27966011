"""What every wire dialect of the simulator shares: reading bodies, faults, hosts, images.

A dialect module (one per provider, named like its adapter in ``backend/providers``)
mounts its provider's paths under its own prefix (``/kling/v1/videos/text2video``), checks
that provider's auth, and speaks its field names, statuses and error envelopes over the
one :class:`~backend.simulator.farm.RenderFarm`.
"""

from __future__ import annotations

import functools
import json
import time
from importlib import resources
from typing import Any

import falcon

from backend.simulator.farm import FaultKind, FaultRule, FaultTarget, RenderFarm, RenderSnapshot


class BadBody(Exception):
    """The body is not a JSON object; each dialect answers in its own envelope."""


def read_json(req: falcon.Request) -> dict[str, Any]:
    raw = req.bounded_stream.read()
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise BadBody(f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadBody("the body must be a JSON object")
    return body


def origin(req: falcon.Request) -> str:
    """``scheme://host`` as the client addressed us, so URLs we hand out reach us back."""
    host = req.get_header("Host") or req.netloc
    return f"{req.scheme}://{host}"


def output_url(snapshot: RenderSnapshot) -> str:
    """Where a finished render's video downloads from (the simulator's one sample MP4)."""
    return f"{snapshot.spec.origin}/v1/outputs/{snapshot.id}.mp4"


#: How a CDN answers a download fault of each kind (plain text, not an API envelope).
_DOWNLOAD_FAULT_STATUS = {
    FaultKind.RATE_LIMITED: 429,
    FaultKind.CAPACITY: 503,
    FaultKind.UNAVAILABLE: 503,
    FaultKind.AUTH: 403,
    FaultKind.BAD_REQUEST: 404,
}


def download_fault(farm: RenderFarm, snapshot: RenderSnapshot, resp: falcon.Response) -> bool:
    """Answer a ``download`` fault rule matching this render, if one is left (every
    dialect's video download goes through here)."""
    spec = snapshot.spec
    rule = farm.take_request_fault(FaultTarget.DOWNLOAD, spec.model, spec.dialect)
    if rule is None:
        return False
    default = _DOWNLOAD_FAULT_STATUS.get(rule.kind, 500) if rule.kind else 500
    resp.status = rule.status or default
    resp.content_type = "text/plain"
    resp.text = rule.describe()
    return True


@functools.cache
def sample_video() -> bytes:
    """The one video every render 'produces'; read from the package so it works when installed."""
    asset = resources.files("backend.simulator").joinpath("assets").joinpath("sample.mp4")
    return asset.read_bytes()


def bearer(req: falcon.Request) -> str | None:
    value = req.get_header("Authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def take_fault(
    farm: RenderFarm, on: FaultTarget, model: str | None, dialect: str
) -> FaultRule | None:
    """The next fault for this request, after hanging if the rule says so.

    A ``hang`` rule sleeps before the dialect answers with an error nobody waits for any
    more; a ``hang_after_create`` rule is returned for the dialect to create the task first
    and then call :func:`hang`.
    """
    rule = farm.take_request_fault(on, model, dialect)
    if rule is not None and rule.kind is FaultKind.HANG:
        hang(rule)
    return rule


def hang(rule: FaultRule) -> None:
    time.sleep(rule.hang_seconds)


def describe_image(value: Any) -> str | None:
    """A short account of an image field as received: ``url:…`` or ``base64:N chars``."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return f"url:{value}"
    if isinstance(value, str) and value.startswith("data:"):
        return f"data-url:{len(value)} chars"
    if isinstance(value, str):
        return f"base64:{len(value)} chars"
    return f"other:{type(value).__name__}"
