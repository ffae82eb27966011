"""Shapes shared by every endpoint."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from backend.schemas import examples

MAX_WEBHOOK_URL_CHARS = 2048
#: The same limit in UTF-8 bytes: what the database and an HTTP request line hold.
MAX_WEBHOOK_URL_BYTES = 2048

#: A schema extension for generated clients: the field's values are listed by another
#: operation (``{"operationId": …, "value": <item property>, "label": <item property>}``,
#: optionally ``"description": <item property>``),
#: so a no-code node shows a dropdown filled from it (integrations/codegen).
OPTIONS_FROM = "x-genhook-options-from"


def webhook_url_shape(value: str) -> str:
    """Check that ``value`` looks like a URL genhook can POST to (the network it points at
    is checked separately, by ``webhooks.url_guard``)."""
    if len(value) > MAX_WEBHOOK_URL_CHARS or len(value.encode()) > MAX_WEBHOOK_URL_BYTES:
        raise ValueError(f"must be at most {MAX_WEBHOOK_URL_BYTES} bytes (UTF-8)")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters (CR, LF, TAB, DEL…)")
    try:
        # The parser that sends the webhooks: what it refuses (an IDNA2003-only host…) is
        # refused here, at submission, not at every delivery attempt.
        httpx.URL(value)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"is not a URL genhook can send to: {exc}") from None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname or any(c.isspace() for c in parts.hostname):
        raise ValueError("must have a host (without spaces)")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value


def in_utc_range(value: datetime) -> datetime:
    """A time that still exists in UTC (``0001-01-01T00:00:00+14:00`` does not), as UTC."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is out of range once converted to UTC") from None


class FieldProblem(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.FIELD_PROBLEM]})

    field: str = Field(description="Dotted path of the offending field, e.g. `metadata.sku`.")
    message: str = Field(description="What is wrong with it.")


class Problem(BaseModel):
    """An RFC 9457 problem details object (``application/problem+json``)."""

    model_config = ConfigDict(title="Problem", json_schema_extra={"examples": [examples.PROBLEM]})

    type: str = Field(
        description="URI identifying the problem type: `urn:genhook:problem:` and a slug, "
        "e.g. `urn:genhook:problem:insufficient-credits`."
    )
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong this time, for a person.")
    instance: str | None = Field(default=None, description="The path that was requested.")
    errors: list[FieldProblem] = Field(
        default_factory=list, description="One entry per offending field (validation only)."
    )


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.HEALTH]})

    status: str = Field(description="`ok`, or `unavailable` when a check failed.")
    checks: dict[str, str] = Field(
        default_factory=dict,
        description="Readiness with the admin key only: `ok` or the error, per dependency "
        "(`database`, `redis`).",
    )
