"""``/v1/image-inputs/{image_id}``: genhook's copy of an input image, for providers that
fetch images by URL. Only a signed, unexpired link opens it."""

from __future__ import annotations

import falcon

from backend.api.body import parse_query
from backend.api.openapi import operation
from backend.context import Context
from backend.errors import NotFound
from backend.images.links import open_link
from backend.schemas.images import ImageLinkQuery


class ImageInputResource:
    #: The link's signature is the credential; providers have no genhook API key.
    public = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="getImageInput",
        summary="Download an input image through a signed link (for providers)",
        description="The link is handed to a provider with its task and expires after "
        "`GENHOOK_IMAGE_LINK_TTL_SECONDS`. Anything but a valid link is a 404.",
        tags=("providers",),
        query=ImageLinkQuery,
        responses={200: None},
        errors=(404, 422),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        query = parse_query(req, ImageLinkQuery)
        image = open_link(self.ctx.store, image_id, query.expires, query.signature, self.ctx.now())
        if image is None:
            raise NotFound("no such image, or the link is not valid any more")
        resp.content_type = image.content_type
        resp.data = image.data
        resp.set_header("Cache-Control", "private, max-age=300")
