"""Signed, expiring links to a kept output: the ``output_url`` clients, browsers and
no-code tools fetch without an API key.

Each job has its own random ``output_link_key``, so a link is an HMAC of the job id and the
expiry under that key (as input images' links are): nothing server-wide to configure or
leak, and a link cannot be stretched or pointed at another job. Links are signed afresh
each time a job is read, so a client always gets a full ``GENHOOK_OUTPUT_URL_TTL_SECONDS``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from backend.errors import Forbidden, Gone, NotFound
from backend.settings import Settings
from backend.store import Store
from backend.store.outputs import OutputRecord, get_output

#: The API route that serves kept outputs.
LINK_PATH = "/v1/outputs/{job_id}"


def new_link_key() -> str:
    return secrets.token_hex(32)


def link_signature(job_id: str, link_key: str, expires: int) -> str:
    message = f"{job_id}:{expires}".encode()
    return hmac.new(link_key.encode(), message, hashlib.sha256).hexdigest()


def output_link(base_url: str, job_id: str, link_key: str, now: datetime, ttl_seconds: int) -> str:
    """The link, absolute under ``base_url`` (``GENHOOK_PUBLIC_BASE_URL``) or, with an
    empty base, a path relative to the API."""
    expires = int(now.timestamp()) + ttl_seconds
    path = LINK_PATH.format(job_id=job_id)
    sig = link_signature(job_id, link_key, expires)
    return f"{base_url.rstrip('/')}{path}?expires={expires}&signature={sig}"


def check_output_link(
    job_id: str, link_key: str, expires: int, signature: str, now: datetime
) -> bool:
    """Constant-time check of the signature, then of the expiry. Compared as bytes:
    ``compare_digest`` refuses non-ASCII text, and a query string may carry any."""
    expected = link_signature(job_id, link_key, expires).encode()
    return hmac.compare_digest(expected, signature.encode()) and expires > now.timestamp()


def open_output(
    store: Store, job_id: str, expires: int, given_signature: str, now: datetime
) -> OutputRecord:
    """The kept output a link opens; NotFound without one, Forbidden for a forged or
    expired link, Gone once retention deleted the file."""
    with store.begin() as conn:
        output = get_output(conn, job_id)
    if output is None:
        raise NotFound("this generation has no kept output")
    if not check_output_link(job_id, output.link_key, expires, given_signature, now):
        raise Forbidden("the link is not valid, or has expired; read the generation again")
    if output.deleted_at is not None:
        raise Gone("the output was deleted after the retention period")
    return output


def signed_output_url(settings: Settings, job_id: str, link_key: str, now: datetime) -> str:
    """genhook's own link to a kept video, valid ``GENHOOK_OUTPUT_URL_TTL_SECONDS``, under
    ``GENHOOK_PUBLIC_BASE_URL`` (else the API's own host and port)."""
    base = settings.public_base_url or f"http://{settings.api_host}:{settings.api_port}"
    return output_link(base, job_id, link_key, now, settings.output_url_ttl_seconds)
