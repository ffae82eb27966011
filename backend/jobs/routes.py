"""A job's route plan: every way it may be rendered, frozen when the job is accepted.

The plan is the catalog's chain for the job's model (its routes, then each fallback
model's routes), kept to the hops that can render this very request: the provider is
enabled here, the model takes the job's frames, aspect ratio and duration. It is stored
with the job, so a catalog edit or a restart never changes what a running job may do,
and each hop carries its price for the job's duration, so billing needs no catalog.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Any

from backend.catalog import END_IMAGE, IMAGE, Catalog, CatalogModel, Route
from backend.providers.registry import SIMULATOR


@dataclass(frozen=True)
class PlannedRoute:
    """One hop of a job's plan."""

    model: str
    provider: str
    provider_model: str
    #: The model's price for the job's duration.
    credits: int
    typical_render_seconds: float
    poll_interval_seconds: float | None = None

    @property
    def key(self) -> str:
        return route_key(self.provider, self.provider_model)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> PlannedRoute:
        return cls(**value)


@dataclass(frozen=True)
class JobShape:
    """What a model must be able to render for a hop to serve the job."""

    duration_seconds: int
    aspect_ratio: str
    has_image: bool
    has_end_image: bool

    def fits(self, model: CatalogModel) -> bool:
        return (
            model.price(self.duration_seconds) is not None
            and self.aspect_ratio in model.aspect_ratios
            and (not self.has_image or model.takes(IMAGE))
            and (not self.has_end_image or model.takes(END_IMAGE))
        )


def build_plan(
    catalog: Catalog, model_id: str, shape: JobShape, enabled: Collection[str]
) -> list[PlannedRoute]:
    """The hops that can render this job, in failover order; empty if none can.

    When no route at all is enabled and the native simulator stands in
    (``GENHOOK_SIMULATOR_FALLBACK``), the model itself is rendered by the simulator, if
    the model can render the job at all."""
    plan = [
        _planned(hop.model, hop.route.provider, hop.route.model, shape, hop.route)
        for hop in catalog.route_plan(model_id)
        if hop.route.provider in enabled and shape.fits(hop.model)
    ]
    model = catalog.models[model_id]
    if not plan and SIMULATOR in enabled and shape.fits(model):
        plan = [_planned(model, SIMULATOR, model.id, shape)]
    return plan


def _planned(
    model: CatalogModel,
    provider: str,
    provider_model: str,
    shape: JobShape,
    route: Route | None = None,
) -> PlannedRoute:
    price = model.price(shape.duration_seconds)
    assert price is not None
    return PlannedRoute(
        model=model.id,
        provider=provider,
        provider_model=provider_model,
        credits=price,
        typical_render_seconds=model.typical_render_seconds,
        poll_interval_seconds=route.poll_interval_seconds if route else None,
    )


def route_key(provider: str, provider_model: str) -> str:
    """``provider/model``: names a route in health and render-time statistics (as the
    catalog's ``Route.key`` and ``PlannedRoute.key``)."""
    return f"{provider}/{provider_model}"


def plan_of(job_plan: list[dict[str, Any]] | None) -> list[PlannedRoute]:
    return [PlannedRoute.from_json(hop) for hop in job_plan or []]
