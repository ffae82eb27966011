"""Headers every answer carries: no MIME sniffing, and no caching of anything the API says
unless the resource chose a policy itself (signed output and image links cache privately).

API answers are per account and may carry secrets (a signup's API key, a webhook endpoint's
signing secret): no proxy or browser cache should keep them.
"""

from __future__ import annotations

from typing import Any

import falcon


class SecurityHeaders:
    """Falcon middleware."""

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", "no-store")
