"""Credentials: API keys (stored only as hashes) and webhook signing secrets.

API keys carry 256 bits of randomness, so a fast SHA-256 digest is a sound way to store
them (as for GitHub tokens); a slow password hash would only slow every request down.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

API_KEY_PREFIX = "gh_"
SIGNING_SECRET_PREFIX = "whsec_"
#: Bytes of randomness in a signing secret (Standard Webhooks allows 24 to 64).
SIGNING_SECRET_BYTES = 32


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def api_key_matches(api_key: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_api_key(api_key), stored_hash)


def new_signing_secret() -> str:
    """A ``whsec_`` + base64 secret, the form the Standard Webhooks libraries expect."""
    raw = secrets.token_bytes(SIGNING_SECRET_BYTES)
    return SIGNING_SECRET_PREFIX + base64.b64encode(raw).decode()


def new_verification_token() -> str:
    """The one-time token of a signup verification link (256 bits)."""
    return secrets.token_urlsafe(32)


def hash_verification_token(token: str) -> str:
    """What is stored of a verification token: a link thief needs the mail, not the database."""
    return hashlib.sha256(("genhook-signup\n" + token).encode()).hexdigest()
