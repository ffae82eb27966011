"""Reading ``schemas/openapi.json``: one operation at a time, as the fields a person fills in.

The writers (``n8n.py``, ``zapier.py``) never look at JSON Schema themselves: they get
``Field`` values here, with 3.1 nullable types already reduced to the type a person enters
(``anyOf: [X, {"type": "null"}]`` and ``"type": [X, "null"]`` both become ``X``, optional).
A schema shape this module does not understand is an error, not a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where the contract is, relative to the repository root.
OPENAPI_PATH = Path("schemas/openapi.json")

#: Strings that may be longer than this (in characters: longer than any URL we take) get a
#: multi-line box in both integrations.
LONG_TEXT = 2048

_KINDS = {"string", "integer", "number", "boolean", "object", "array"}


class UnsupportedSchema(ValueError):
    """The document holds a schema the generator cannot turn into a form field."""


#: The schema extension naming the operation that lists a field's values (see
#: ``backend/schemas/common.py``).
OPTIONS_FROM = "x-genhook-options-from"


@dataclass(frozen=True)
class OptionsSource:
    """Where a field's choices come from: GET ``path``, the items under ``items_key``, each
    choice's value and label being those item properties."""

    operation_id: str
    path: str
    items_key: str
    value: str
    label: str
    description: str = ""  #: an item property shown under each choice, where the UI can


@dataclass(frozen=True)
class Field:
    """One value a person fills in: a path or query parameter, or a JSON body property."""

    name: str  #: the API's name, e.g. ``aspect_ratio``
    location: str  #: ``path``, ``query``, ``header`` or ``body``
    required: bool
    kind: str  #: string, integer, number, boolean, enum, object or array
    description: str
    default: Any = None
    example: Any = None
    choices: tuple[str, ...] = ()  #: the values of an enum, in the schema's order
    item_kind: str = ""  #: for arrays: the kind of one item
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    format: str = ""
    options_from: OptionsSource | None = None  #: a dropdown filled by another operation


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str  #: upper case
    path: str  #: e.g. ``/v1/video/generations/{job_id}``
    description: str
    fields: tuple[Field, ...]
    sample: Any  #: the example of the success response


def load(root: Path) -> dict[str, Any]:
    """The OpenAPI document of the repository at ``root``."""
    document: dict[str, Any] = json.loads((root / OPENAPI_PATH).read_text(encoding="utf-8"))
    return document


def read_operation(document: dict[str, Any], operation_id: str) -> Operation:
    """The operation with this ``operationId``, its fields in the document's order:
    parameters first, then the body's properties."""
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                parameters = [_parameter(document, p) for p in op.get("parameters", [])]
                # Headers (Idempotency-Key) last: the form opens with what the request is.
                fields = [f for f in parameters if f.location != "header"]
                fields += _body_fields(document, op.get("requestBody"))
                fields += [f for f in parameters if f.location == "header"]
                return Operation(
                    operation_id=operation_id,
                    method=method.upper(),
                    path=path,
                    description=op["description"],
                    fields=tuple(fields),
                    sample=_success_example(op),
                )
    raise KeyError(f"no operation {operation_id!r} in the OpenAPI document")


def field_from_schema(
    document: dict[str, Any], name: str, schema: dict[str, Any], *, required: bool, location: str
) -> Field:
    """The form field for one property or parameter schema."""
    schema = non_null(document, schema)
    if "enum" in schema:
        kind = "enum"
    elif schema.get("type") in _KINDS:
        kind = schema["type"]
    else:
        raise UnsupportedSchema(f"{name}: cannot map {json.dumps(schema)[:200]}")
    items = non_null(document, schema["items"]) if kind == "array" else {}
    examples = schema.get("examples") or [None]
    return Field(
        name=name,
        location=location,
        required=required,
        kind=kind,
        description=schema.get("description") or _fallback_description(name),
        default=schema.get("default"),
        example=examples[0],
        choices=tuple(str(v) for v in schema.get("enum", ())),
        item_kind=items.get("type", ""),
        minimum=schema.get("minimum"),
        maximum=schema.get("maximum"),
        max_length=schema.get("maxLength"),
        format=schema.get("format", ""),
        options_from=_options_source(document, schema[OPTIONS_FROM])
        if OPTIONS_FROM in schema
        else None,
    )


def _options_source(document: dict[str, Any], spec: dict[str, str]) -> OptionsSource:
    """The listing operation ``spec`` names: a GET whose 2xx answer has one array property."""
    for path, methods in document["paths"].items():
        op = methods.get("get")
        if isinstance(op, dict) and op.get("operationId") == spec["operationId"]:
            code = min(c for c in op["responses"] if c.startswith("2"))
            schema = _resolve(
                document, op["responses"][code]["content"]["application/json"]["schema"]
            )
            arrays = [k for k, v in schema["properties"].items() if v.get("type") == "array"]
            if len(arrays) != 1:
                raise UnsupportedSchema(f"{spec['operationId']}: no single list in its answer")
            return OptionsSource(
                spec["operationId"],
                path,
                arrays[0],
                spec["value"],
                spec["label"],
                spec.get("description", ""),
            )
    raise UnsupportedSchema(f"{OPTIONS_FROM}: no GET operation {spec['operationId']!r}")


def non_null(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without its 3.1 ``null`` alternative, ``$ref`` resolved; the outer
    keywords (description, default, examples) win over the referenced schema's."""
    schema = _resolve(document, schema)
    variants = schema.get("anyOf") or schema.get("oneOf")
    if variants is not None:
        kept = [v for v in variants if v.get("type") != "null"]
        if len(kept) != 1:
            raise UnsupportedSchema(f"a union of {len(kept)} non-null types")
        outer = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        return {**non_null(document, kept[0]), **outer}
    if isinstance(schema.get("type"), list):
        types = [t for t in schema["type"] if t != "null"]
        if len(types) != 1:
            raise UnsupportedSchema(f"a union of types {schema['type']}")
        return {**schema, "type": types[0]}
    return schema


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _parameter(document: dict[str, Any], parameter: dict[str, Any]) -> Field:
    schema = dict(parameter["schema"])
    if "description" in parameter:
        schema["description"] = parameter["description"]
    return field_from_schema(
        document,
        parameter["name"],
        schema,
        required=parameter.get("required", False),
        location=parameter["in"],
    )


def _body_fields(document: dict[str, Any], body: dict[str, Any] | None) -> list[Field]:
    if body is None:
        return []
    schema = _resolve(document, body["content"]["application/json"]["schema"])
    required = set(schema.get("required", ()))
    return [
        field_from_schema(document, name, prop, required=name in required, location="body")
        for name, prop in schema["properties"].items()
    ]


def _success_example(op: dict[str, Any]) -> Any:
    code = min(c for c in op["responses"] if c.startswith("2"))
    content = op["responses"][code].get("content", {}).get("application/json", {})
    return content.get("example")


def _fallback_description(name: str) -> str:
    """Path ids carry no description in the document; anything else must have one."""
    if name.endswith("_id"):
        return f"ID of the {name.removesuffix('_id').replace('_', ' ')}."
    raise UnsupportedSchema(f"{name} has no description")


def response_schema(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    """The object one call of the operation answers with: its 2xx body, or for a list
    (``data`` array) one item of it."""
    for methods in document["paths"].values():
        for op in methods.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                code = min(c for c in op["responses"] if c.startswith("2"))
                body = op["responses"][code]["content"]["application/json"]["schema"]
                schema = _resolve(document, body)
                data = schema.get("properties", {}).get("data", {})
                if data.get("type") == "array":
                    return _resolve(document, data["items"])
                return schema
    raise KeyError(f"no operation {operation_id!r} in the OpenAPI document")


def webhook_payload_schema(document: dict[str, Any]) -> dict[str, Any]:
    """The body every outgoing webhook carries (one schema for all events)."""
    schemas = {
        json.dumps(hook["post"]["requestBody"]["content"]["application/json"]["schema"])
        for hook in document["webhooks"].values()
    }
    if len(schemas) != 1:
        raise UnsupportedSchema("the webhooks do not share one payload schema")
    return _resolve(document, json.loads(schemas.pop()))
