"""Accounts: signing up, operators' settings of an account (keys: ``api_keys.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from backend import ids, security
from backend.api_keys import PREFIX_LENGTH, create_key
from backend.context import Context
from backend.idempotency import Answer, IdempotencyKey, remember
from backend.schemas.accounts import SignupResponse
from backend.store import accounts as accounts_store
from backend.store.accounts import AccountRecord


@dataclass(frozen=True)
class NewAccount:
    """A freshly created account with the only copy of its API key genhook will ever have,
    and its signing secret as created (the account record holds it sealed)."""

    account: AccountRecord
    api_key: str
    signing_secret: str


def create_account(
    ctx: Context,
    email: str,
    *,
    credits: int | None = None,
    idempotency: IdempotencyKey | None = None,
    allow_private_webhooks: bool = False,
) -> NewAccount:
    """Create an account with an API key, a signing secret and its starting credits.

    Raises ``Conflict`` when the email is taken. With an ``idempotency`` key the signup's
    answer is remembered in the same transaction (``KeyTaken`` if another request with the
    key committed first).
    """
    api_key = security.new_api_key()
    signing_secret = security.new_signing_secret()
    with ctx.store.begin() as conn:
        account = accounts_store.create_account(
            conn,
            account_id=ids.account_id(),
            email=email.lower(),
            credits=ctx.settings.signup_credits if credits is None else credits,
            signing_secret=ctx.secret_box.seal(signing_secret),
            api_key_hash=security.hash_api_key(api_key),
            api_key_prefix=api_key[:PREFIX_LENGTH],
            allow_private_webhooks=allow_private_webhooks,
        )
        new = NewAccount(account, api_key, signing_secret)
        if idempotency is not None:
            remember(conn, ctx, idempotency, signup_answer(new))
    return new


def signup_answer(new: NewAccount, status: int = 201) -> Answer:
    """The answer that shows the API key, the only time it is ever shown: an open
    signup's 201, or the 200 of a followed verification link."""
    body = SignupResponse(
        id=new.account.id,
        email=new.account.email,
        credits=new.account.credits,
        api_key=new.api_key,
        signing_secret=new.signing_secret,
        created_at=new.account.created_at,
    )
    return Answer(status, body.model_dump_json())


def issue_api_key(ctx: Context, account_id: str) -> str:
    """A new API key for an existing account (the old ones stay valid)."""
    return create_key(ctx, account_id, enforce_limit=False).api_key


def set_private_webhooks(ctx: Context, email: str, allowed: bool) -> AccountRecord:
    """An operator's decision: may this account's webhooks and image fetches reach the
    private networks of ``private_webhook_networks``? Raises ``NotFound``. API processes
    see it within ``api_key_cache_seconds`` (this one at once)."""
    account = _change_account(
        ctx,
        email,
        lambda conn, account_id: accounts_store.set_allow_private_webhooks(
            conn, account_id, allowed
        ),
    )
    ctx.key_cache.forget_account(account.id)
    return account


def get_account(ctx: Context, account_id: str) -> AccountRecord | None:
    with ctx.store.begin() as conn:
        return accounts_store.get_account(conn, account_id)


def set_max_jobs_in_flight(ctx: Context, email: str, cap: int | None) -> AccountRecord:
    """An operator's cap on the account's unfinished jobs (``None``: the server's
    default); raises ``NotFound`` for an unknown email. Takes effect at the next submission."""
    return _change_account(
        ctx,
        email,
        lambda conn, account_id: accounts_store.set_max_jobs_in_flight(conn, account_id, cap),
    )


def _change_account(
    ctx: Context, email: str, change: Callable[[sa.Connection, str], None]
) -> AccountRecord:
    """An operator's ``change`` to the account with ``email``, in one transaction; the
    account as it is after it. Raises ``NotFound`` for an unknown email."""
    with ctx.store.begin() as conn:
        account = accounts_store.require_account_by_email(conn, email)
        change(conn, account.id)
        updated = accounts_store.get_account(conn, account.id)
    assert updated is not None
    return updated
