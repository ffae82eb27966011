"""``/v1/outputs/{job_id}``: genhook's kept copy of a finished video, behind a signed link.

No API key: the link's signature is the credential, so a browser's ``<video>`` tag or a
no-code tool can fetch it directly. One ``Range`` is honoured (a player seeks with it);
several, or a malformed one, get the whole file, as RFC 9110 allows.
"""

from __future__ import annotations

import logging

import falcon
from pydantic import BaseModel, ConfigDict, Field

from backend.api.body import parse_query
from backend.api.openapi import operation
from backend.context import Context
from backend.errors import NotFound
from backend.storage import StoredObject, store_for
from backend.storage.links import open_output

log = logging.getLogger(__name__)


class OutputLinkQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    expires: int = Field(ge=0, description="Unix time after which the link stops working.")
    signature: str = Field(max_length=128, description="HMAC-SHA256, hex.")


class OutputResource:
    #: The link's signature is the credential; browsers and no-code tools have no API key.
    public = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="getOutput",
        summary="Download a finished video through its signed `output_url`",
        description="The link comes with the generation (`output_url`), is signed afresh on "
        "every read and expires after `GENHOOK_OUTPUT_URL_TTL_SECONDS`. A single `Range` "
        "(`bytes=a-b`, `bytes=a-`, `bytes=-n`) answers 206. A forged or expired link is a "
        "403; an output deleted by retention is a 410.",
        tags=("generations",),
        query=OutputLinkQuery,
        responses={200: None, 206: None},
        errors=(403, 404, 410, 416, 422),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        stored, span = self._prepare(req, resp, job_id)
        if span is not None:
            resp.stream = store_for(self.ctx.settings).read_range(stored.key, *span)

    def on_head(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        self._prepare(req, resp, job_id)

    def _prepare(
        self, req: falcon.Request, resp: falcon.Response, job_id: str
    ) -> tuple[StoredObject, tuple[int, int] | None]:
        """Check the link and set the headers; the stored file and the (start, end)
        bytes to send, None when there are none."""
        query = parse_query(req, OutputLinkQuery)
        now = self.ctx.now()
        output = open_output(self.ctx.store, job_id, query.expires, query.signature, now)
        stored = store_for(self.ctx.settings).stat(output.key)
        if stored is None:
            log.warning("the output of %s is missing from the store (%s)", job_id, output.key)
            raise NotFound("the kept output is missing from the store")
        size = stored.size_bytes
        resp.content_type = output.content_type
        resp.set_header("Accept-Ranges", "bytes")
        max_age = max(query.expires - int(now.timestamp()), 0)
        resp.set_header("Cache-Control", f"private, max-age={max_age}")
        span = requested_range(req, size)
        if span is None:
            span = (0, size - 1)
        else:
            resp.status = falcon.HTTP_206
            resp.content_range = (span[0], span[1], size)
        resp.content_length = span[1] - span[0] + 1
        return stored, span if resp.content_length else None


def requested_range(req: falcon.Request, size: int) -> tuple[int, int] | None:
    """The (first, last) bytes one ``Range`` asks for, None to send the whole file;
    raises 416 when it asks for nothing the file has."""
    try:
        asked = req.range
    except falcon.HTTPInvalidHeader:  # malformed, or several ranges
        return None
    if asked is None or req.range_unit != "bytes":
        return None
    first, last = asked
    if first < 0:  # bytes=-n: the last n bytes
        if size == 0:
            raise falcon.HTTPRangeNotSatisfiable(size)
        return max(size + first, 0), size - 1
    if first >= size:
        raise falcon.HTTPRangeNotSatisfiable(size)
    return first, size - 1 if last < 0 else min(last, size - 1)
