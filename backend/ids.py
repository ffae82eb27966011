"""Public identifiers: a type prefix and a time-ordered random part.

The time-ordered part (a ULID-like base32 string) keeps ids roughly sortable by creation,
which the newest-first listing relies on as a tie-breaker.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """``prefix_`` + 10 chars of milliseconds + 16 chars of randomness (80 bits)."""
    millis = time.time_ns() // 1_000_000
    randomness = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode(millis, 10)}{_encode(randomness, 16)}"


def job_id() -> str:
    return new_id("vgen")


def account_id() -> str:
    return new_id("acct")


def delivery_id() -> str:
    return new_id("dlv")


def endpoint_id() -> str:
    return new_id("we")


def image_id() -> str:
    return new_id("img")


def mail_id() -> str:
    return new_id("mail")
