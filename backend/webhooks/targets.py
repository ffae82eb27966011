"""Where one account's webhooks and image fetches may go: public addresses, plus the
non-public networks its operator allowed.

Two settings and one flag decide:

* ``webhook_allowed_networks`` are allowed for **every** account (an operator's deliberate
  choice, e.g. an internal network all tenants' receivers live on);
* ``private_webhook_networks`` (loopback and RFC 1918 by default) are allowed only to the
  accounts whose ``allow_private_webhooks`` an operator set (``genhook accounts create
  --allow-private-webhooks``, ``genhook accounts set``; the demo account of ``genhook up``).

Each kind of account has its own guarded client (and so its own pool of vetted
connections): a connection opened for a trusted account is never reused for another.
The flag is read again at every delivery, so taking it away stops the next attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from backend.context import Context
from backend.settings import Settings
from backend.store import accounts as accounts_store
from backend.webhooks.url_guard import IPNetwork


@dataclass(frozen=True)
class Reach:
    """The networks one account may reach beyond public addresses, and the client that
    connects only there."""

    private: bool
    networks: list[IPNetwork]
    client: httpx.Client


def allowed_networks(settings: Settings, *, private: bool) -> list[IPNetwork]:
    if private:
        return [*settings.webhook_allowed_networks, *settings.private_webhook_networks]
    return list(settings.webhook_allowed_networks)


def reach(ctx: Context, *, private: bool) -> Reach:
    return Reach(
        private,
        allowed_networks(ctx.settings, private=private),
        ctx.private_webhook_client if private else ctx.webhook_client,
    )


def reach_of_account(ctx: Context, account_id: str) -> Reach:
    """What the account may reach now (an unknown account: public addresses only)."""
    with ctx.store.begin() as conn:
        account = accounts_store.get_account(conn, account_id)
    return reach(ctx, private=account is not None and account.allow_private_webhooks)
