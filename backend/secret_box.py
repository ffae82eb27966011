"""Signing secrets sealed at rest under the operator's keys (``GENHOOK_SECRET_KEY``).

The database never holds a webhook signing secret in plain text: a copy of the SQLite file,
a backup or a read-only SQL injection yields nothing that signs. Each secret is sealed with
AES-256-GCM and stored as::

    v1.<key id>.<base64url(nonce | ciphertext | tag)>

The key id (8 hex digits of the key's SHA-256) names the key that sealed it, so several
keys can be configured at once, newest first: the first seals, every one opens. That is how
keys rotate (``genhook secrets rotate`` re-seals every value under the first key, after
which the older keys can go), and how a value sealed with a key that is not configured is
reported as exactly that, by its id, rather than as a corrupt row.

Secrets are opened only where one is needed: to sign a delivery, and to show one to its
owner (``GET …/secret``; a new or rotated secret is shown from memory, never read back).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.errors import SecretKeyError
from backend.store.types import KEY_ID_DIGITS, SEALED_PREFIX, SealedSecret

#: An operator key: 32 random bytes (AES-256), written as URL-safe base64.
KEY_BYTES = 32
#: A fresh random nonce per sealed value (the size AES-GCM is designed for).
NONCE_BYTES = 12
#: Binds a sealed value to its purpose, so the same keys could never be confused with
#: anything else they might seal one day.
_PURPOSE = b"genhook webhook signing secret"
#: What to tell an operator who has no key yet.
_HOW_TO_MAKE_ONE = "make one with `genhook secrets generate-key`"


def generate_key() -> str:
    """A new operator key, in the form ``GENHOOK_SECRET_KEY`` takes."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


@dataclass(frozen=True)
class SecretKey:
    key_id: str
    cipher: AESGCM = field(repr=False)


def parse_keys(text: str) -> list[SecretKey]:
    """The keys in a ``GENHOOK_SECRET_KEY`` value: comma-separated, newest first.

    Raises ``SecretKeyError`` for a key that is not 32 bytes of URL-safe base64, or one
    given twice; the message never contains a key."""
    keys: list[SecretKey] = []
    for number, part in enumerate((p.strip() for p in text.split(",") if p.strip()), 1):
        try:
            raw = base64.b64decode(part, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise SecretKeyError(
                f"GENHOOK_SECRET_KEY: key #{number} is not {KEY_BYTES} bytes of URL-safe "
                f"base64 ({_HOW_TO_MAKE_ONE})"
            )
        key_id = hashlib.sha256(b"genhook secret key id\n" + raw).hexdigest()[:KEY_ID_DIGITS]
        if any(key.key_id == key_id for key in keys):
            raise SecretKeyError(f"GENHOOK_SECRET_KEY: key {key_id} is given twice")
        keys.append(SecretKey(key_id, AESGCM(raw)))
    return keys


class SecretBox:
    """Seals signing secrets under the first configured key and opens them with any."""

    def __init__(self, keys: list[SecretKey]) -> None:
        self._keys = {key.key_id: key for key in keys}
        self._current = keys[0] if keys else None

    @classmethod
    def from_setting(cls, text: str) -> SecretBox:
        return cls(parse_keys(text))

    @property
    def configured(self) -> bool:
        return self._current is not None

    @property
    def key_ids(self) -> list[str]:
        """The configured keys' ids, the sealing one first."""
        return list(self._keys)

    @property
    def current_key_id(self) -> str | None:
        return self._current.key_id if self._current else None

    def seal(self, secret: str) -> SealedSecret:
        if self._current is None:
            raise SecretKeyError(
                "GENHOOK_SECRET_KEY is not set, so a signing secret cannot be stored "
                f"({_HOW_TO_MAKE_ONE})"
            )
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._current.cipher.encrypt(nonce, secret.encode(), _PURPOSE)
        data = base64.urlsafe_b64encode(sealed).decode().rstrip("=")
        return SealedSecret(f"{SEALED_PREFIX}{self._current.key_id}.{data}")

    def open(self, sealed: SealedSecret) -> str:
        """The secret itself; ``SecretKeyError`` naming the key id when it cannot be."""
        key_id = sealed.key_id
        if key_id is None:
            raise SecretKeyError(
                "a signing secret is still stored in plain text: run `genhook migrate` with "
                "GENHOOK_SECRET_KEY set to seal it"
            )
        key = self._keys.get(key_id)
        if key is None:
            raise SecretKeyError(
                f"a signing secret is sealed with key {key_id}, which GENHOOK_SECRET_KEY "
                f"does not hold (it holds: {', '.join(self.key_ids) or 'no key'}); add that "
                "key after the current one"
            )
        data = sealed.token[len(SEALED_PREFIX) + len(key_id) + 1 :]
        try:
            blob = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            plain = key.cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _PURPOSE)
        except (binascii.Error, ValueError, InvalidTag):
            raise SecretKeyError(
                f"a signing secret sealed with key {key_id} does not open with it: the "
                "stored value was altered"
            ) from None
        return plain.decode()

    def open_optional(self, sealed: SealedSecret | None) -> str | None:
        return None if sealed is None else self.open(sealed)

    def is_current(self, sealed: SealedSecret) -> bool:
        """Whether ``sealed`` is sealed with the first key (nothing for a rotation to do)."""
        return self._current is not None and sealed.key_id == self._current.key_id

    def __repr__(self) -> str:
        return f"SecretBox(key_ids={self.key_ids!r})"
