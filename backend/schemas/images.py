"""The query of a signed image link."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ImageLinkQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires: int = Field(ge=0, description="Unix time after which the link stops working.")
    signature: str = Field(min_length=64, max_length=64, description="HMAC-SHA256, hex.")
