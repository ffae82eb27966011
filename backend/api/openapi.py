"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Responders declare what they accept and answer with :func:`operation`; this module walks
the routes and asks pydantic for the JSON Schemas. Nothing here is written by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from backend.idempotency import HEADER as IDEMPOTENCY_HEADER
from backend.idempotency import REPLAYED_HEADER
from backend.ratelimit.headers import POLICY_HEADER, RETRY_AFTER_HEADER, STATE_HEADER
from backend.schemas import examples
from backend.schemas.common import Problem

F = TypeVar("F", bound=Callable[..., Any])

_HTTP_METHODS = ("get", "post", "put", "patch", "delete")
_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or invalid API key",
    402: "Not enough credits",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    410: "Gone",
    413: "Body too large",
    415: "The body is not `application/json`: `errors` names `Content-Type`",
    422: "Validation failed; `errors` names each field",
    429: "Too many requests: a rate limit, a quota or the cap on generations in flight "
    "(the problem's `type` says which); retry after `Retry-After` seconds",
    503: "Unavailable: the database cannot be reached (for readiness: or Redis; for "
    "signup: mail is not configured), or a URL's host name did not resolve in time "
    "(`errors` names the field); retry after `Retry-After` seconds",
}

#: The rate-limit fields (draft-ietf-httpapi-ratelimit-headers) on every answer to an
#: authenticated request while the server's request limits are on.
RATE_LIMIT_HEADERS = {
    POLICY_HEADER: "The account's request limits for this kind of request, one item per "
    'window: `"read-1s";q=50;w=1, "read-60s";q=1200;w=60` (`q` requests per `w` seconds; '
    "`read` for GET, `write` for the others).",
    STATE_HEADER: "What is left of each window now: "
    '`"read-1s";r=49;t=1, "read-60s";r=1187;t=4` (`r` requests remaining, `t` seconds '
    "until more are available).",
}
#: Headers of a 429.
TOO_MANY_REQUESTS_HEADERS = {
    RETRY_AFTER_HEADER: "Seconds to wait before sending the request again.",
    **RATE_LIMIT_HEADERS,
}

#: Operations that answer without the database; every other one may answer 503.
_NO_DATABASE = frozenset({"getHealth", "listModels"})


_IDEMPOTENCY_KEY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "A key of your choosing (a UUID; at most 255 printable ASCII characters) "
    "that makes retrying safe: the same key with the same body within 24 hours (the "
    "server's `GENHOOK_IDEMPOTENCY_TTL_SECONDS`) answers the first request's status and "
    "body again with `Idempotent-Replayed: true`, and does and charges nothing more; the "
    "same key with a different body is a 422 naming this header. Keys are scoped to the "
    "account. Only a request that succeeded is remembered, so a refused one can be fixed "
    "and sent again with the same key.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}

#: What each path parameter names, and an example of it (the examples' story's ids).
_PATH_PARAMS = {
    "job_id": ("The generation's id, as returned when it was created.", examples.GENERATION_ID),
    "endpoint_id": ("The webhook endpoint's id.", examples.ENDPOINT_ID),
    "delivery_id": ("The webhook delivery's id.", examples.DELIVERY_ID),
    "image_id": ("The stored input image's id.", examples.IMAGE_ID),
    "key_id": ("The API key's id (`key_…`), as listed.", examples.API_KEY_ID),
    "provider": ("The provider that calls back, e.g. `kling`.", "kling"),
    "token": ("The task's unguessable callback token, from its callback URL.", "3q2-7wEe…"),
}


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    responses: dict[int, type[BaseModel] | None]
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""
    headers: dict[int, dict[str, str]] = field(default_factory=dict)
    #: Takes an ``Idempotency-Key`` header (``backend/idempotency.py``).
    idempotent: bool = False
    #: Statuses whose answer is an HTML page for people, not JSON.
    html: tuple[int, ...] = ()
    #: ``False`` where an empty body means every field's default.
    request_required: bool = True


def operation(**kwargs: Any) -> Callable[[F], F]:
    """Attach an :class:`Operation` to a responder (``on_get`` etc.)."""

    def attach(func: F) -> F:
        func.__genhook_operation__ = Operation(**kwargs)  # type: ignore[attr-defined]
        return func

    return attach


#: Headers of every webhook request, documented on each entry of the ``webhooks`` section.
WEBHOOK_HEADERS = {
    "X-Genhook-Event": "The event, e.g. `video.generation.completed`.",
    "X-Genhook-Delivery-Id": "The delivery id; the same on every attempt and redelivery.",
    "X-Genhook-Signature": "`sha256=` + hex HMAC-SHA256 of the raw body, keyed by the secret.",
    "webhook-id": "Standard Webhooks message id (equals the delivery id); dedup on it.",
    "webhook-timestamp": "Standard Webhooks timestamp (Unix seconds).",
    "webhook-signature": "Standard Webhooks signatures: `v1,<base64>`, two during a rotation.",
}


def build_document(
    routes: Iterable[tuple[str, Any, str]],
    *,
    title: str,
    version: str,
    webhooks: Mapping[str, tuple[str, type[BaseModel]]] | None = None,
) -> dict[str, Any]:
    """``routes`` holds (path template, resource, responder suffix) triples; ``webhooks``
    maps each event genhook sends to (summary, payload model)."""
    webhooks = webhooks or {}
    paths: dict[str, dict[str, Any]] = {}
    ops = operations(routes)
    models = document_models(ops, webhooks)
    _, schema = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    components = schema.get("$defs", {})
    for path, method, op, public in ops:
        paths.setdefault(path, {})[method] = _operation_object(path, op, public, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "webhooks": {
            event: _webhook_object(event, summary, model)
            for event, (summary, model) in webhooks.items()
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }


def operations(
    routes: Iterable[tuple[str, Any, str]],
) -> list[tuple[str, str, Operation, bool]]:
    """(path, method, operation, public) of every documented responder, in route order."""
    ops: list[tuple[str, str, Operation, bool]] = []
    for path, resource, suffix in routes:
        for method in _HTTP_METHODS:
            responder = getattr(resource, f"on_{method}{suffix}", None)
            op = getattr(responder, "__genhook_operation__", None)
            if op is not None:
                ops.append((path, method, op, getattr(resource, "public", False)))
    return ops


def document_models(
    ops: Iterable[tuple[str, str, Operation, bool]],
    webhooks: Mapping[str, tuple[str, type[BaseModel]]],
) -> set[type[BaseModel]]:
    """Every model the document names directly: bodies, queries, responses, webhook
    payloads and the problem details."""
    models: set[type[BaseModel]] = {Problem, *(model for _, model in webhooks.values())}
    for _, _, op, _ in ops:
        models.update(m for m in (op.request, op.query, *op.responses.values()) if m is not None)
    return models


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _media(model: type[BaseModel]) -> dict[str, Any]:
    """A JSON media type object: the model's schema, and its first example if it has one
    (``model_config["json_schema_extra"]["examples"]``), which tools show as a sample."""
    media: dict[str, Any] = {"schema": _ref(model)}
    example = model_example(model)
    if example is not None:
        media["example"] = example
    return media


def model_example(model: type[BaseModel]) -> Any:
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    return examples[0] if isinstance(examples, list) and examples else None


def _operation_object(
    path: str, op: Operation, public: bool, components: dict[str, Any]
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": list(op.tags),
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": _PATH_PARAMS[name][0],
                "schema": {"type": "string", "examples": [_PATH_PARAMS[name][1]]},
            }
            for name in _path_params(path)
        ],
        "responses": {},
    }
    if op.description:
        result["description"] = op.description
    if public:
        result["security"] = []
    if op.query is not None:
        query = components[op.query.__name__]
        for name, prop in query["properties"].items():
            required = name in query.get("required", [])
            result["parameters"].append(
                {"name": name, "in": "query", "required": required, "schema": prop}
            )
    if op.idempotent:
        result["parameters"].append(_IDEMPOTENCY_KEY_PARAMETER)
    if op.request is not None:
        result["requestBody"] = {
            "required": op.request_required,
            "content": {"application/json": _media(op.request)},
        }
    for status, model in op.responses.items():
        response: dict[str, Any] = {"description": model.__name__ if model else "No content"}
        if model is not None:
            response["content"] = {"application/json": _media(model)}
        if status in op.html:
            response["description"] = "An HTML page for people"
            response["content"] = {"text/html": {"schema": {"type": "string"}}}
        headers = dict(op.headers.get(status, {}))
        if not public:
            headers.update(RATE_LIMIT_HEADERS)
        if op.idempotent:
            headers[REPLAYED_HEADER] = (
                "`true` when this is the remembered answer to an earlier request with the "
                "same `Idempotency-Key` (nothing was done or charged again); absent otherwise."
            )
        if headers:
            response["headers"] = _headers(headers)
        result["responses"][str(status)] = response
    errors = set(op.errors) | ({401, 429} if not public else set())
    if op.request is not None:
        errors.add(415)  # every body must be application/json (``backend/api/body.py``)
    if op.operation_id not in _NO_DATABASE:
        errors.add(503)
    for status in sorted(errors):
        problem: dict[str, Any] = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/problem+json": {"schema": _ref(Problem)}},
        }
        if status == 429:
            problem["headers"] = _headers(TOO_MANY_REQUESTS_HEADERS)
        result["responses"][str(status)] = problem
    return result


def _headers(headers: Mapping[str, str]) -> dict[str, Any]:
    return {
        name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
    }


def _webhook_object(event: str, summary: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "post": {
            "operationId": event.replace(".", "_"),
            "summary": summary,
            "parameters": [
                {
                    "name": name,
                    "in": "header",
                    "required": True,
                    "description": text,
                    "schema": {"type": "string"},
                }
                for name, text in WEBHOOK_HEADERS.items()
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": _media(model)},
            },
            "responses": {"200": {"description": "Any 2xx acknowledges the delivery."}},
        }
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
