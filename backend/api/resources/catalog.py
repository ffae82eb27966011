"""``/v1/models``: the catalog and its prices."""

from __future__ import annotations

import falcon

from backend.api.openapi import operation
from backend.context import Context
from backend.providers.registry import SIMULATOR
from backend.schemas.models import CatalogEntry, CatalogList


class ModelsResource:
    public = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="listModels",
        summary="Models and their credit prices",
        description="Every model you can order, with its price in credits per duration, the "
        "aspect ratios and inputs it takes, and the models a job falls back to. Needs no "
        "API key.",
        tags=("models",),
        responses={200: CatalogList},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        catalog = self.ctx.catalog
        enabled = self.ctx.providers
        resp.text = CatalogList(
            data=[
                CatalogEntry(
                    id=m.id,
                    name=m.name,
                    description=m.description,
                    credits={label: price for label, price in m.credits.items()},
                    aspect_ratios=list(m.aspect_ratios),
                    inputs=list(m.inputs),
                    typical_render_seconds=m.typical_render_seconds,
                    max_wait_seconds=m.max_wait_seconds or self.ctx.settings.job_timeout_seconds,
                    failover=catalog.chain(m.id),
                    available=any(hop.route.provider in enabled for hop in catalog.route_plan(m.id))
                    or SIMULATOR in enabled,
                )
                for m in catalog.models.values()
            ]
        ).model_dump_json()
