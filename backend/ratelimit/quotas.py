"""The limits genhook enforces, as the domain asks for them.

Each ``require_*`` counts one use and raises a 429 error (with ``Retry-After`` and the
``RateLimit`` fields) when the policy has no room; ``take_delivery_attempt`` answers instead
of raising, since the worker that asks defers the attempt rather than failing it.
"""

from __future__ import annotations

import redis

from backend.errors import QuotaExceeded, RateLimited
from backend.ratelimit.limiter import Decision, Limiter
from backend.ratelimit.policy import Policy
from backend.settings import Settings


class RateLimits:
    """Every policy of the settings, over one shared :class:`Limiter`."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.limiter = Limiter(client)
        self.reads = Policy.from_setting("read", settings.rate_limit_reads)
        self.writes = Policy.from_setting("write", settings.rate_limit_writes)
        self.deliveries = Policy.from_setting("deliveries", settings.quota_deliveries)
        self.redeliveries = Policy.from_setting("redeliver", settings.quota_redeliveries)
        self.recovers = Policy.from_setting("recover", settings.quota_recovers)
        self.signup_address = Policy.from_setting("signup", settings.signup_limit_per_address)
        self.signup_domain = Policy.from_setting("signup-domain", settings.signup_limit_per_domain)

    def request(self, account_id: str, *, write: bool) -> Decision:
        """Count one API request of the account (reads and writes apart)."""
        return self.limiter.hit(self.writes if write else self.reads, account_id)

    def take_delivery_attempt(self, account_id: str) -> Decision:
        """Count one webhook attempt of the account, if its quota has room."""
        return self.limiter.hit(self.deliveries, account_id)

    def require_redeliver(self, account_id: str) -> None:
        self._require_delivery_room(account_id)
        _require(self.limiter.hit(self.redeliveries, account_id), self.redeliveries, "redeliver")

    def require_recover(self, account_id: str) -> None:
        self._require_delivery_room(account_id)
        _require(self.limiter.hit(self.recovers, account_id), self.recovers, "recover")

    def require_signup(self, client_address: str, email: str) -> None:
        """Count a signup attempt from ``client_address``, then (if that one had room) for
        the email's domain: a client over its own limit cannot use up a domain's."""
        by_address = self.limiter.hit(self.signup_address, client_address)
        if not by_address.allowed:
            raise RateLimited(
                "too many signups from this address; retry after "
                f"{by_address.retry_after_seconds} s",
                retry_after_seconds=by_address.retry_after_seconds,
                headers=by_address.headers,
            )
        domain = email.rpartition("@")[2].lower()
        by_domain = self.limiter.hit(self.signup_domain, domain)
        if not by_domain.allowed:
            raise RateLimited(
                f"too many signups with {domain} addresses; retry after "
                f"{by_domain.retry_after_seconds} s",
                retry_after_seconds=by_domain.retry_after_seconds,
                headers=by_domain.headers,
            )

    def _require_delivery_room(self, account_id: str) -> None:
        """Redeliver and recover only queue work: refuse them while the account's webhook
        quota is used up, rather than queue attempts that would have to wait anyway."""
        room = self.limiter.room(self.deliveries, account_id)
        if not room.allowed:
            raise QuotaExceeded(
                f"this account has used its webhook delivery quota "
                f"({self.deliveries.describe()}); retry after {room.retry_after_seconds} s",
                retry_after_seconds=room.retry_after_seconds,
                headers=room.headers,
            )


def _require(decision: Decision, policy: Policy, call: str) -> None:
    if decision.allowed:
        return
    raise QuotaExceeded(
        f"this account has used its quota of {call} calls ({policy.describe()}); retry after "
        f"{decision.retry_after_seconds} s",
        retry_after_seconds=decision.retry_after_seconds,
        headers=decision.headers,
    )
