"""Per-account request rate limits on every authenticated route, with the ``RateLimit``
fields on every answer (successes too), so a client can pace itself before it is refused.

Runs after :class:`~backend.api.auth.BearerAuth` (which names the account); public routes
(signup, health, signed links, provider callbacks) are not counted here. Reads (GET, HEAD)
and writes (everything else) are counted apart: writes cost more and have a smaller budget.
"""

from __future__ import annotations

from typing import Any

import falcon

from backend.context import Context
from backend.errors import RateLimited
from backend.ratelimit.headers import POLICY_HEADER, STATE_HEADER

#: Headers whose values are lists, so several policies can each add theirs.
LIST_HEADERS = frozenset({POLICY_HEADER, STATE_HEADER})
#: Methods counted as reads.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AccountRateLimit:
    """Falcon middleware: a 429 with ``Retry-After`` once the account is over its rate."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        account_id = getattr(req.context, "account_id", None)
        if resource is None or account_id is None:
            return
        write = req.method not in READ_METHODS
        decision = self.ctx.rate_limits.request(account_id, write=write)
        req.context.rate_limit_headers = decision.headers
        if not decision.allowed:
            kind = "write" if write else "read"
            raise RateLimited(
                f"this account is over its {kind} rate limit ({decision.refused_by}); "
                f"retry after {decision.retry_after_seconds} s",
                retry_after_seconds=decision.retry_after_seconds,
            )

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        # Appended: a 429 of a quota (redeliver, recover) already names its own window, and
        # both lists are true (``RateLimit`` and ``RateLimit-Policy`` are lists).
        for name, value in getattr(req.context, "rate_limit_headers", {}).items():
            if name in LIST_HEADERS:
                resp.append_header(name, value)
            elif resp.get_header(name) is None:
                resp.set_header(name, value)
