"""``/v1/models``: the catalog and its prices."""

from __future__ import annotations

import falcon

from backend.api.openapi import operation
from backend.catalog import MODELS
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
        tags=("models",),
        responses={200: CatalogList},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.text = CatalogList(
            data=[
                CatalogEntry(
                    id=m.id,
                    name=m.name,
                    description=m.description,
                    credits={f"{d}s": price for d, price in sorted(m.credits_by_duration.items())},
                    aspect_ratios=list(m.aspect_ratios),
                    inputs=list(m.inputs),
                    typical_render_seconds=m.typical_render_seconds,
                    available=m.route_for(self.ctx.providers) is not None
                    or SIMULATOR in self.ctx.providers,
                )
                for m in MODELS.values()
            ]
        ).model_dump_json()
