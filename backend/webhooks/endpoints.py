"""Managing an account's webhook endpoints: create, change, delete, rotate a secret.

Every URL is checked against the SSRF guard when it is registered, as a generation's
``webhook_url`` is when it is submitted; the delivery step checks again at connect time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from backend import ids, security
from backend.context import Context
from backend.errors import Conflict, NotFound
from backend.schemas.webhooks import (
    SigningSecret,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
)
from backend.store import accounts as accounts_store
from backend.store import endpoints as endpoints_store
from backend.store.endpoints import EndpointRecord
from backend.webhooks import targets, url_guard

#: Live (not deleted) webhook endpoints one account may have.
MAX_ENDPOINTS_PER_ACCOUNT = 20


@dataclass(frozen=True)
class NewEndpoint:
    """A created endpoint and its secret as created (the record holds it sealed)."""

    record: EndpointRecord
    secret: str


def create_endpoint(ctx: Context, account_id: str, request: WebhookEndpointCreate) -> NewEndpoint:
    """Raises ``Conflict`` past :data:`MAX_ENDPOINTS_PER_ACCOUNT` (every event is sent to
    every subscribed endpoint, so their number bounds the work one job can cause)."""
    _require_public(ctx, account_id, request.url)
    secret = security.new_signing_secret()
    with ctx.store.begin() as conn:
        if (
            endpoints_store.count_live_endpoints_locked(conn, account_id)
            >= MAX_ENDPOINTS_PER_ACCOUNT
        ):
            raise Conflict(
                f"an account can have at most {MAX_ENDPOINTS_PER_ACCOUNT} webhook endpoints; "
                "delete one first"
            )
        record = endpoints_store.create_endpoint(
            conn,
            endpoint_id=ids.endpoint_id(),
            account_id=account_id,
            url=request.url,
            description=request.description,
            events=list(request.events),
            enabled=request.enabled,
            secret=ctx.secret_box.seal(secret),
            retry_schedule=request.retry_schedule,  # type: ignore[arg-type]
            timeout_seconds=request.timeout_seconds,
        )
    return NewEndpoint(record, secret)


def get_endpoint(ctx: Context, account_id: str, endpoint_id: str) -> EndpointRecord:
    with ctx.store.begin() as conn:
        return _owned(conn, account_id, endpoint_id)


def current_secret(ctx: Context, account_id: str, endpoint_id: str) -> SigningSecret:
    """The endpoint's current secret, opened to be shown to its owner."""
    record = get_endpoint(ctx, account_id, endpoint_id)
    return SigningSecret(
        secret=ctx.secret_box.open(record.secret),
        previous_secret_expires_at=record.previous_secret_expires_at,
    )


def list_endpoints(ctx: Context, account_id: str) -> list[EndpointRecord]:
    with ctx.store.begin() as conn:
        return endpoints_store.list_endpoints(conn, account_id)


def update_endpoint(
    ctx: Context, account_id: str, endpoint_id: str, request: WebhookEndpointUpdate
) -> EndpointRecord:
    changes = {name: getattr(request, name) for name in request.model_fields_set}
    if "url" in changes:
        _require_public(ctx, account_id, changes["url"])
    if changes.get("enabled") is True:
        # Turning an endpoint back on forgives its history.
        changes.update(disabled_reason=None, disabled_at=None, failing_since=None)
    elif changes.get("enabled") is False:
        changes.update(disabled_reason="disabled by the account", disabled_at=ctx.now())
    with ctx.store.begin() as conn:
        _owned(conn, account_id, endpoint_id)
        if changes:
            endpoints_store.update_endpoint(conn, endpoint_id, **changes)
        return _owned(conn, account_id, endpoint_id)


def delete_endpoint(ctx: Context, account_id: str, endpoint_id: str) -> None:
    """Soft delete: the endpoint stops receiving, its delivery log stays readable."""
    with ctx.store.begin() as conn:
        _owned(conn, account_id, endpoint_id)
        endpoints_store.update_endpoint(conn, endpoint_id, enabled=False, deleted_at=ctx.now())


def rotate_endpoint_secret(
    ctx: Context, account_id: str, endpoint_id: str, overlap_seconds: float | None = None
) -> SigningSecret:
    new_secret = security.new_signing_secret()
    until = _overlap_end(ctx, overlap_seconds)
    with ctx.store.begin() as conn:
        _owned(conn, account_id, endpoint_id)
        endpoints_store.rotate_secret(
            conn,
            endpoint_id,
            new_secret=ctx.secret_box.seal(new_secret),
            previous_expires_at=until,
        )
    return SigningSecret(secret=new_secret, previous_secret_expires_at=until)


def rotate_account_secret(
    ctx: Context, account_id: str, overlap_seconds: float | None = None
) -> SigningSecret:
    """A new secret for the account's own ``webhook_url`` deliveries."""
    new_secret = security.new_signing_secret()
    until = _overlap_end(ctx, overlap_seconds)
    with ctx.store.begin() as conn:
        if (
            accounts_store.rotate_signing_secret(
                conn,
                account_id,
                new_secret=ctx.secret_box.seal(new_secret),
                previous_expires_at=until,
            )
            is None
        ):
            raise NotFound("account not found")
    return SigningSecret(secret=new_secret, previous_secret_expires_at=until)


def _overlap_end(ctx: Context, overlap_seconds: float | None) -> datetime:
    """When the old secret stops signing: at once for an overlap of 0 (a delivery signs
    with the previous secret only while ``now < previous_expires_at``)."""
    if overlap_seconds is None:
        overlap_seconds = ctx.settings.webhook_secret_overlap_seconds
    return ctx.now() + timedelta(seconds=overlap_seconds)


def _owned(conn: sa.Connection, account_id: str, endpoint_id: str) -> EndpointRecord:
    endpoint = endpoints_store.get_account_endpoint(conn, account_id, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id!r} in this account")
    return endpoint


def _require_public(ctx: Context, account_id: str, url: str) -> None:
    """The URL must reach what this account may reach (public, or its allowed private
    networks), its name resolving within the DNS timeout."""
    url_guard.require_public(
        url,
        targets.reach_of_account(ctx, account_id).networks,
        "url",
        timeout=ctx.settings.dns_timeout_seconds,
        lookup=ctx.name_lookup,
    )
