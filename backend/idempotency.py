"""``Idempotency-Key``: a client that lost an answer sends the request again and gets that
answer, not a second paid job or a second account.

The first request's answer is stored in the same transaction as its work (the job and its
charge, or the account), under a unique (scope, key hash): of concurrent requests with one
key the database lets exactly one commit, the others roll back everything they did and
replay its answer. A key is scoped to its account (signup, which has none, to "signup"),
kept ``idempotency_ttl_seconds`` (24 h), and bound to its body: the same key with another
body is a 422 naming the header. Only a request that succeeded is remembered, so one that
was refused (402, 422…) can be fixed and sent again with the same key.

Stored answers may hold secrets (a signup's API key), so they are encrypted under a key
derived from the client's key and body, neither of which is stored.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.context import Context
from backend.errors import Conflict, ValidationFailed
from backend.store import idempotency as store

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
#: The scope of keys sent with signups, which have no account yet.
SIGNUP_SCOPE = "signup"

_NONCE_BYTES = 12


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's key for one request: whose it is, and what body it was sent with."""

    scope: str
    key: str
    request_hash: str

    @property
    def key_hash(self) -> str:
        return _sha256("key", self.scope, self.key)

    def _cipher(self) -> AESGCM:
        return AESGCM(bytes.fromhex(_sha256("answer", self.scope, self.key, self.request_hash)))


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: str


class KeyTaken(Exception):
    """Another request with the same key committed first; replay its answer."""


def key_from_header(value: str | None, scope: str, body: dict[str, Any]) -> IdempotencyKey | None:
    """The request's key, or ``None`` without the header; a malformed one is a 422."""
    if value is None:
        return None
    if not value or len(value) > MAX_KEY_LENGTH:
        raise ValidationFailed.for_field(
            HEADER, f"must be 1 to {MAX_KEY_LENGTH} characters (a UUID is a good key)"
        )
    if not value.isascii() or not value.isprintable():
        raise ValidationFailed.for_field(HEADER, "must be printable ASCII (a UUID is a good key)")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return IdempotencyKey(scope, value, _sha256("body", canonical))


def replay(ctx: Context, key: IdempotencyKey) -> Answer | None:
    """The answer given to the first request with ``key``, if one is remembered."""
    with ctx.store.begin() as conn:
        found = store.find(conn, key.scope, key.key_hash, ctx.now())
    if found is None:
        return None
    if found.request_hash != key.request_hash:
        raise ValidationFailed.for_field(
            HEADER,
            "was already used with a different request body; send a new key for a new request",
        )
    blob = found.response
    try:
        body = key._cipher().decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], None)
    except InvalidTag:  # cannot happen unless the row was tampered with
        raise ValidationFailed.for_field(HEADER, "the remembered answer is unreadable") from None
    return Answer(found.status_code, body.decode())


def remember(conn: sa.Connection, ctx: Context, key: IdempotencyKey, answer: Answer) -> None:
    """Store ``answer`` in the caller's transaction; raises :class:`KeyTaken` (which rolls
    the transaction back) when another request with the key got there first."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = nonce + key._cipher().encrypt(nonce, answer.body.encode(), None)
    now = ctx.now()
    try:
        store.remember(
            conn,
            scope=key.scope,
            key_hash=key.key_hash,
            request_hash=key.request_hash,
            status_code=answer.status_code,
            response=sealed,
            now=now,
            expires_at=now + timedelta(seconds=ctx.settings.idempotency_ttl_seconds),
        )
    except sa.exc.IntegrityError:
        raise KeyTaken from None


def run_once(
    ctx: Context, key: IdempotencyKey | None, work: Callable[[], Answer]
) -> tuple[Answer, bool]:
    """``work``'s answer, or the remembered one; and whether it was replayed.

    ``work`` must call :func:`remember` inside the transaction that does the work.
    """
    if key is None:
        return work(), False
    for _ in range(2):
        remembered = replay(ctx, key)
        if remembered is not None:
            return remembered, True
        try:
            return work(), False
        except KeyTaken:
            continue  # the winner has committed: replay its answer
    # The winner's answer expired between two reads: vanishingly rare, and safe to retry.
    raise Conflict(f"a request with this {HEADER} is being answered; send it again")


def _sha256(*parts: str) -> str:
    return hashlib.sha256("\n".join(("genhook-idempotency", *parts)).encode()).hexdigest()
