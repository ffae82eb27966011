"""Accounts: signing up, and finding the account behind an API key."""

from __future__ import annotations

from dataclasses import dataclass

from backend import ids, security
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
            api_key_prefix=api_key[:10],
        )
        new = NewAccount(account, api_key, signing_secret)
        if idempotency is not None:
            remember(conn, ctx, idempotency, signup_answer(new))
    return new


def signup_answer(new: NewAccount) -> Answer:
    """The 201 a signup answers: the only time the API key is ever shown."""
    body = SignupResponse(
        id=new.account.id,
        email=new.account.email,
        credits=new.account.credits,
        api_key=new.api_key,
        signing_secret=new.signing_secret,
        created_at=new.account.created_at,
    )
    return Answer(201, body.model_dump_json())


def issue_api_key(ctx: Context, account_id: str) -> str:
    """A new API key for an existing account (the old ones stay valid)."""
    api_key = security.new_api_key()
    with ctx.store.begin() as conn:
        accounts_store.add_api_key(
            conn,
            account_id=account_id,
            key_hash=security.hash_api_key(api_key),
            key_prefix=api_key[:10],
        )
    return api_key


def authenticate(ctx: Context, api_key: str) -> str | None:
    """The id of the account owning ``api_key``, or ``None``."""
    key_hash = security.hash_api_key(api_key)
    with ctx.store.begin() as conn:
        found = accounts_store.find_key(conn, key_hash)
    if found is None or not security.api_key_matches(api_key, found[1]):
        return None
    return found[0]


def get_account(ctx: Context, account_id: str) -> AccountRecord | None:
    with ctx.store.begin() as conn:
        return accounts_store.get_account(conn, account_id)
