"""The token of a job's poll chain (see ``poll.py``): a fresh one retires every older message."""

from __future__ import annotations

import secrets


def new_poll_token() -> str:
    return secrets.token_hex(8)
