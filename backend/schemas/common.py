"""Shapes shared by every endpoint."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

MAX_WEBHOOK_URL_CHARS = 2048


def webhook_url_shape(value: str) -> str:
    """Check that ``value`` looks like a URL genhook can POST to (the network it points at
    is checked separately, by ``webhooks.url_guard``)."""
    if len(value) > MAX_WEBHOOK_URL_CHARS:
        raise ValueError(f"must be at most {MAX_WEBHOOK_URL_CHARS} characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must have a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value


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
