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
    typical_render_seconds: int
    available: bool = Field(
        description="Whether a provider that renders this model is configured on this server."
    )


class CatalogList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CatalogEntry]
