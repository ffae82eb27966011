"""The model catalog as the API shows it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CatalogEntry(BaseModel):
    object: Literal["model"] = "model"
    id: str
    name: str
    description: str
    credits: dict[str, int] = Field(description='Price per duration, e.g. `{"5s": 3}`.')
    aspect_ratios: list[str]
    inputs: list[str] = Field(
        description="What the model takes: `text` always; `image` (first frame, "
        "`image_url`) and `end_image` (last frame, `end_image_url`) where it can."
    )
    typical_render_seconds: float
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
        "routes, or of its fallbacks' routes, is configured."
    )


class CatalogList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CatalogEntry]
