"""``/v1/provider-callbacks/{provider}/{token}``: where video providers push status changes."""

from __future__ import annotations

import json

import falcon
import httpx

from backend.api.body import read_raw_body
from backend.api.openapi import operation
from backend.context import Context
from backend.errors import PayloadTooLarge
from backend.jobs.callback import receive_callback

#: Provider callbacks carry a task object, never media.
MAX_CALLBACK_BYTES = 1024 * 1024


class ProviderCallbackResource:
    #: Providers cannot send genhook API keys: the unguessable token is the credential.
    public = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="receiveProviderCallback",
        summary="Receive a video provider's callback (for providers, not clients)",
        description="Each provider task gets its own URL with an unguessable token when "
        "`GENHOOK_PUBLIC_BASE_URL` is set. The body is verified where the provider signs it "
        "and is only a hint: genhook polls the task at once. A bad token or signature is 401.",
        tags=("providers",),
        responses={200: None},
        errors=(401, 413),
    )
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, provider: str, token: str
    ) -> None:
        raw = read_raw_body(req, MAX_CALLBACK_BYTES)
        if len(raw) > MAX_CALLBACK_BYTES:
            raise PayloadTooLarge(f"callbacks are limited to {MAX_CALLBACK_BYTES} bytes")
        headers = httpx.Headers(dict(req.headers))
        reply = receive_callback(self.ctx, provider, token, headers, raw)
        resp.status = falcon.HTTP_200
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps(reply if reply is not None else {"received": True})
