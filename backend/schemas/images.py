"""The query of a signed image link."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas import examples


class ImageLinkQuery(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [examples.IMAGE_LINK_QUERY]}
    )

    expires: int = Field(
        ge=0,
        description="Unix time after which the link stops working.",
        examples=[examples.IMAGE_LINK_QUERY["expires"]],
    )
    signature: str = Field(
        min_length=64,
        max_length=64,
        description="HMAC-SHA256, hex.",
        examples=[examples.SIGNATURE],
    )
