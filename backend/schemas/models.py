"""The model catalog as the API shows it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas import examples


class CatalogEntry(BaseModel):
    """A model clients may order, with its prices."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.CATALOG_ENTRY]})

    object: Literal["model"] = Field(default="model", description="Always `model`.")
    id: str = Field(
        description="The model id to pass as `model` when submitting a generation.",
        examples=["kling-v3"],
    )
    name: str = Field(description="Display name.", examples=["Kling v3"])
    description: str = Field(description="What the model is good at.")
    credits: dict[str, int] = Field(description='Price per duration, e.g. `{"5s": 3}`.')
    aspect_ratios: list[str] = Field(description="The `aspect_ratio` values it renders.")
    inputs: list[str] = Field(
        description="What the model takes: `text` always; `image` (first frame, "
        "`image_url`) and `end_image` (last frame, `end_image_url`) where it can."
    )
    typical_render_seconds: float = Field(
        description="About how long a render takes; the starting point of the ETA."
    )
    max_wait_seconds: float = Field(
        description="A job still unfinished after this is failed and refunded."
    )
    failover: list[str] = Field(
        description="The models a job may be rendered as, in the order they are tried: this "
        "model first, then its fallbacks. A job is never billed more than it was charged: "
        "a cheaper fallback bills the cheaper price."
    )
    available: bool = Field(
        description="Whether this server takes jobs for this model: a provider of one of its "
        "routes, or of its fallbacks' routes, is configured (or the simulator renders it: "
        "`GENHOOK_SIMULATOR_FALLBACK`)."
    )


class CatalogList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.CATALOG_LIST]})

    object: Literal["list"] = Field(default="list", description="Always `list`.")
    data: list[CatalogEntry] = Field(description="Every model of the catalog.")
