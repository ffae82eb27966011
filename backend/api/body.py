"""Turning request bodies and query strings into validated pydantic models.

Every failure becomes a ``ClientError`` naming the offending field, so a bad request is
always a 4xx problem and never reaches the domain code half-parsed.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel, ValidationError

from backend.errors import (
    FieldError,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

Model = TypeVar("Model", bound=BaseModel)

#: Largest JSON body the API reads.
MAX_BODY_BYTES = 64 * 1024
#: The one media type of request bodies (``application/<anything>+json`` is taken too).
JSON = "application/json"


def parse_body(
    req: falcon.Request, model: type[Model], *, max_bytes: int = MAX_BODY_BYTES
) -> Model:
    """``max_bytes`` is larger only where a body may carry images as ``data:`` URLs."""
    require_json(req)
    if req.content_length is not None and req.content_length > max_bytes:
        raise PayloadTooLarge(f"request bodies are limited to {max_bytes} bytes")
    raw = read_raw_body(req, max_bytes)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request bodies are limited to {max_bytes} bytes")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedBody("the body nests too deeply") from None
    if not isinstance(data, dict):
        raise MalformedBody("the body must be a JSON object")
    nul_at = _path_to_nul(data)
    if nul_at is not None:
        # PostgreSQL cannot store NUL in text, and no field has a use for it.
        raise ValidationFailed.for_field(nul_at or "body", "must not contain NUL characters")
    return validate(model, data)


def require_json(req: falcon.Request) -> None:
    """Refuse a body that is not declared JSON, before reading it: a web page can make its
    visitors' browsers send ``text/plain`` or form bodies anywhere without asking (no CORS
    preflight), but not ``application/json``."""
    media = (req.content_type or "").partition(";")[0].strip().lower()
    if media == JSON or (media.startswith("application/") and media.endswith("+json")):
        return
    given = f"`{media[:100]}`" if media else "none"
    raise UnsupportedMediaType(
        f"Content-Type: the body must be sent as {JSON} (given: {given})",
        errors=[FieldError("Content-Type", f"must be {JSON}")],
    )


def parse_optional_body(
    req: falcon.Request, model: type[Model], *, max_bytes: int = MAX_BODY_BYTES
) -> Model:
    """:func:`parse_body` where no body at all means every field's default."""
    if not read_raw_body(req, max_bytes).strip():
        return validate(model, {})
    return parse_body(req, model, max_bytes=max_bytes)


def read_raw_body(req: falcon.Request, max_bytes: int) -> bytes:
    """The body, read once: a request run again after a lost database connection
    (``backend/api/retry.py``) parses the same bytes."""
    raw = getattr(req.context, "raw_body", None)
    if raw is None:
        raw = req.bounded_stream.read(max_bytes + 1)
        req.context.raw_body = raw
    return bytes(raw)


def _path_to_nul(value: Any, path: str = "") -> str | None:
    """Dotted path of the first string (value or key) holding a NUL character."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        child = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            return child
        found = _path_to_nul(item, child)
        if found is not None:
            return found
    return None


def parse_query(req: falcon.Request, model: type[Model]) -> Model:
    return validate(model, dict(req.params))


def validate(model: type[Model], data: dict[str, Any]) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [_field_error(e) for e in exc.errors()]
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        raise ValidationFailed(detail, errors=errors) from None


def _field_error(error: Any) -> FieldError:
    field = ".".join(str(part) for part in error["loc"]) or "body"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required"
    elif error["type"] == "extra_forbidden":
        message = "is not a known field"
    return FieldError(field, message)
