"""Bearer-key authentication for every resource that does not declare itself public."""

from __future__ import annotations

from typing import Any

import falcon

from backend.api.retry import once_more_if_connection_lost
from backend.api_keys import authenticate
from backend.context import Context
from backend.errors import Unauthorized


class BearerAuth:
    """Falcon middleware: sets ``req.context.account_id`` and ``api_key_id`` or answers 401.

    Also sets ``allow_private_webhooks`` (what the account may reach). The key is looked up
    in the database, then remembered for a few seconds (``backend/api_key_cache.py``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        if resource is None or getattr(resource, "public", False):
            return
        header = req.get_header("Authorization") or ""
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
        # A lookup cut by a lost connection runs again, as responders do (``retry.py``):
        # noting the key's use twice writes the same thing.
        found = once_more_if_connection_lost(
            lambda: authenticate(self.ctx, key.strip()), "the API key lookup"
        )
        if found is None:
            raise Unauthorized("the API key is not valid")
        req.context.account_id = found.account_id
        req.context.api_key_id = found.api_key_id
        req.context.allow_private_webhooks = found.allow_private_webhooks
