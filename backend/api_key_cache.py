"""API keys found live recently, remembered in the process for a few seconds.

Why: looking a key up costs a database transaction on every request (on SQLite one that
takes the single write lock), more than the rest of a status read. A key found live is
remembered with what authentication tells the request (its account, and whether that
account may reach private networks) for ``api_key_cache_seconds``. A revocation made in this
process forgets the key at once; one made in another process (another API worker, the CLI)
holds here within those seconds, as does an operator's change to the account. Keys not
found are never remembered: a new key works from its first request, and a guess always
costs a lookup.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from cachetools import TTLCache

#: Keys remembered at most per process (the least recently used go first).
MAX_KEYS = 10_000


@dataclass(frozen=True)
class Caller:
    """Who a live API key speaks for."""

    account_id: str
    api_key_id: int
    key_hash: str
    #: The account may reach ``private_webhook_networks`` (operators set it).
    allow_private_webhooks: bool


class KeyCache:
    """Thread-safe: the API's threads share one per process."""

    def __init__(self, ttl_seconds: float) -> None:
        self.enabled = ttl_seconds > 0
        self._callers: TTLCache[str, Caller] = TTLCache(
            maxsize=MAX_KEYS, ttl=max(ttl_seconds, 0.001), timer=time.monotonic
        )
        self._lock = threading.Lock()
        #: Bumped by every forget: a lookup that started before one is not remembered (it
        #: may have read the key just before its revocation committed).
        self._forgets = 0

    def get(self, key_hash: str) -> Caller | None:
        if not self.enabled:
            return None
        with self._lock:
            return self._callers.get(key_hash)

    def lookup_started(self) -> int:
        """Call before reading the database; pass the answer to :meth:`put`."""
        with self._lock:
            return self._forgets

    def put(self, caller: Caller, started: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            if started == self._forgets:
                self._callers[caller.key_hash] = caller

    def forget(self, key_hash: str) -> None:
        with self._lock:
            self._forgets += 1
            self._callers.pop(key_hash, None)

    def forget_account(self, account_id: str) -> None:
        """After an operator's change to the account made in this process."""
        with self._lock:
            self._forgets += 1
            for key_hash in [h for h, c in self._callers.items() if c.account_id == account_id]:
                self._callers.pop(key_hash, None)
