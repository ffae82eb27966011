"""Accounts: signing up, and finding the account behind an API key."""

from __future__ import annotations

from dataclasses import dataclass

from backend import ids, security
from backend.context import Context
from backend.errors import NotFound
from backend.idempotency import Answer, IdempotencyKey, remember
from backend.schemas.accounts import SignupResponse
from backend.store import accounts as accounts_store
from backend.store.accounts import AccountRecord


@dataclass(frozen=True)
class NewAccount:
    """A freshly created account with the only copy of its API key genhook will ever have."""

    account: AccountRecord
    api_key: str


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
    with ctx.store.begin() as conn:
        account = accounts_store.create_account(
            conn,
            account_id=ids.account_id(),
            email=email.lower(),
            credits=ctx.settings.signup_credits if credits is None else credits,
            signing_secret=security.new_signing_secret(),
            api_key_hash=security.hash_api_key(api_key),
            api_key_prefix=api_key[:10],
        )
        new = NewAccount(account, api_key)
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
        signing_secret=new.account.signing_secret,
        created_at=new.account.created_at,
    )
    return Answer(status, body.model_dump_json())


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


def set_max_jobs_in_flight(ctx: Context, email: str, cap: int | None) -> AccountRecord:
    """An operator's cap on the account's unfinished jobs (``None``: the server's
    default); raises ``NotFound`` for an unknown email. Takes effect at the next submission."""
    with ctx.store.begin() as conn:
        account = accounts_store.get_account_by_email(conn, email.lower())
        if account is None:
            raise NotFound(f"no account with email {email!r}")
        accounts_store.set_max_jobs_in_flight(conn, account.id, cap)
        updated = accounts_store.get_account(conn, account.id)
    assert updated is not None
    return updated
