"""Shapes shared by every endpoint."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `metadata.sku`.")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem details object (``application/problem+json``)."""

    model_config = ConfigDict(title="Problem")

    type: str = Field(description="URI identifying the problem type.")
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] = Field(
        default_factory=list, description="One entry per offending field (validation only)."
    )


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
