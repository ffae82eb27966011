"""An account's API keys: authenticate a request, create, list and revoke keys.

A request's key is looked up in the database, then remembered by its API process for
``api_key_cache_seconds`` (``backend/api_key_cache.py``): a key revoked through the API is
refused from the very next request to that process, and by every other process within those
seconds. Rules:

* an account has at most :data:`MAX_LIVE_KEYS` live keys;
* the API refuses to revoke an account's last live key (409): the account would lock
  itself out. An operator can (``genhook accounts revoke-key``), e.g. for an account
  whose every key leaked, and issue a new one with ``genhook accounts create-key``;
* a key may revoke itself; the answer is the last thing it gets.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from backend import security
from backend.api_key_cache import Caller
from backend.context import Context
from backend.errors import Conflict, NotFound
from backend.schemas.api_keys import public_id
from backend.store import accounts as accounts_store
from backend.store import api_keys as keys_store
from backend.store.api_keys import ApiKeyRecord

#: Live keys one account may hold at once (one per service that calls genhook, plus one
#: being rotated in).
MAX_LIVE_KEYS = 10
#: Characters of a key kept in the clear to recognise it in a list (``gh_`` and 7 more).
PREFIX_LENGTH = 10


@dataclass(frozen=True)
class NewApiKey:
    """A freshly created key with the only copy of its secret genhook will ever have."""

    record: ApiKeyRecord
    api_key: str


def authenticate(ctx: Context, api_key: str) -> Caller | None:
    """Who the live key ``api_key`` speaks for, or ``None``; a lookup in the database notes
    the key's use (at most once a minute).

    The cache is keyed by the key's SHA-256, so finding an entry reveals nothing about the
    keys that are not presented; a lookup compares the stored hash in constant time."""
    key_hash = security.hash_api_key(api_key)
    remembered = ctx.key_cache.get(key_hash)
    if remembered is not None:
        return remembered
    started = ctx.key_cache.lookup_started()
    with ctx.store.begin() as conn:
        found = keys_store.find_live_key(conn, key_hash)
        if found is None or not security.api_key_matches(api_key, found.key_hash):
            return None
        keys_store.note_used(conn, found, ctx.now())
        account = accounts_store.get_account(conn, found.account_id)
    caller = Caller(
        account_id=found.account_id,
        api_key_id=found.id,
        key_hash=key_hash,
        allow_private_webhooks=account is not None and account.allow_private_webhooks,
    )
    ctx.key_cache.put(caller, started)
    return caller


def create_key(ctx: Context, account_id: str, *, enforce_limit: bool = True) -> NewApiKey:
    """Raises ``Conflict`` past :data:`MAX_LIVE_KEYS` (unless an operator asks)."""
    api_key = security.new_api_key()
    with ctx.store.begin() as conn:
        live = keys_store.live_keys_locked(conn, account_id)
        if enforce_limit and len(live) >= MAX_LIVE_KEYS:
            raise Conflict(
                f"an account can have at most {MAX_LIVE_KEYS} live API keys; revoke one first"
            )
        record = keys_store.add_key(
            conn,
            account_id=account_id,
            key_hash=security.hash_api_key(api_key),
            key_prefix=api_key[:PREFIX_LENGTH],
            now=ctx.now(),
        )
    return NewApiKey(record, api_key)


def list_keys(ctx: Context, account_id: str) -> list[ApiKeyRecord]:
    with ctx.store.begin() as conn:
        return keys_store.list_keys(conn, account_id)


def revoke_key(ctx: Context, account_id: str, key_id: int) -> ApiKeyRecord:
    """Revoke one of the account's keys (at once, for every API process). Revoking a key
    already revoked changes nothing. Raises ``NotFound`` for a key of another account and
    ``Conflict`` for the account's last live key."""
    with ctx.store.begin() as conn:
        live = keys_store.live_keys_locked(conn, account_id)
        if any(key.id == key_id for key in live):
            if len(live) == 1:
                raise Conflict(
                    "this is the account's last live API key: create another one first, "
                    "or ask the operator to revoke it"
                )
            keys_store.revoke(conn, key_id, ctx.now())
        revoked = _owned(conn, account_id, key_id)
    ctx.key_cache.forget(revoked.key_hash)
    return revoked


def revoke_by_prefix(ctx: Context, email: str, prefix: str) -> tuple[ApiKeyRecord, int]:
    """The operator's revocation (``genhook accounts revoke-key``): the last live key too.
    Returns the key and how many live keys the account has left. Raises ``NotFound`` for
    an unknown email or a prefix matching no live key, ``Conflict`` for one matching
    several."""
    with ctx.store.begin() as conn:
        account = accounts_store.require_account_by_email(conn, email)
        live = keys_store.live_keys_locked(conn, account.id)
        matching = [key for key in live if key.key_prefix.startswith(prefix)]
        if not matching:
            raise NotFound(f"no live API key of {email} starts with {prefix!r}")
        if len(matching) > 1:
            raise Conflict(f"{len(matching)} live keys start with {prefix!r}; give more of it")
        keys_store.revoke(conn, matching[0].id, ctx.now())
        revoked = _owned(conn, account.id, matching[0].id)
    ctx.key_cache.forget(revoked.key_hash)
    return revoked, len(live) - 1


def _owned(conn: sa.Connection, account_id: str, key_id: int) -> ApiKeyRecord:
    key = keys_store.get_account_key(conn, account_id, key_id)
    if key is None:
        raise NotFound(f"no API key {public_id(key_id)!r} in this account")
    return key
