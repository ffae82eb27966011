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
    typical_render_seconds: int


class CatalogList(BaseModel):
    object: Literal["list"] = "list"
    data: list[CatalogEntry]
