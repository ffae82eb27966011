"""The Zapier half: per operation, the parts of a Zapier create/search/trigger that the
contract decides, for the hand-written app to wrap with its ``perform``.

``operations.js`` exports one object per operationId: ``key``, ``noun``, ``display``,
``inputFields`` (Zapier's field schema: type, required, helpText, choices, ``list``/``dict``)
and ``sample`` (the success response's example; a list's first item), plus ``request``
(method, path, which fields go in the query and which in the JSON body), which is not part
of Zapier's schema. ``utils.js`` holds ``cleanInputData`` and ``requestFor``, so optional
fields left empty are never sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from integrations.codegen.literal import display_name, header, literal
from integrations.codegen.openapi import (
    LONG_TEXT,
    Field,
    Operation,
    field_from_schema,
    non_null,
    read_operation,
    response_schema,
    webhook_payload_schema,
)

#: Where the generated files go, relative to the repository root.
DIRECTORY = "integrations/zapier/generated"


@dataclass(frozen=True)
class AppOperation:
    operation_id: str
    key: str  #: Zapier key: letters, digits and underscores
    noun: str
    label: str


OPERATIONS = (
    AppOperation("createVideoGeneration", "create_generation", "Generation", "Create Generation"),
    AppOperation("getVideoGeneration", "find_generation", "Generation", "Find Generation"),
    AppOperation("cancelVideoGeneration", "cancel_generation", "Generation", "Cancel Generation"),
    AppOperation("listModels", "list_models", "Model", "List Models"),
    AppOperation("getAccount", "get_account", "Account", "Get Account"),
)

_KEYS = {op.operation_id: op.key for op in OPERATIONS}
_TYPES = {"integer": "integer", "number": "number", "boolean": "boolean"}


def files(document: dict[str, Any]) -> dict[str, str]:
    """Repository-relative path -> text of every generated Zapier file."""
    exported = {op.operation_id: definition(op, read_operation(document, op.operation_id))
                for op in OPERATIONS}  # fmt: skip
    for op in OPERATIONS:
        schema = response_schema(document, op.operation_id)
        exported[op.operation_id]["outputFields"] = output_fields(document, schema)
    exported["webhookPayload"] = {
        "outputFields": output_fields(document, webhook_payload_schema(document)),
    }
    body = header() + "'use strict';\n\nmodule.exports = " + literal(exported, "  ") + ";\n"
    return {f"{DIRECTORY}/operations.js": body, f"{DIRECTORY}/utils.js": header() + _UTILS}


def definition(app: AppOperation, operation: Operation) -> dict[str, Any]:
    fields = operation.fields
    return {
        "key": app.key,
        "noun": app.noun,
        "display": {"label": app.label, "description": operation.description},
        "inputFields": [input_field(f) for f in fields],
        "sample": _sample(operation.sample),
        "request": {
            "method": operation.method,
            "path": operation.path,
            "query": [f.name for f in fields if f.location == "query"],
            "body": [f.name for f in fields if f.location == "body"],
            "headers": [f.name for f in fields if f.location == "header"],
        },
    }


def input_field(field: Field) -> dict[str, Any]:
    """A Zapier input field; Zapier shows ``helpText`` as Markdown, so it is kept as is."""
    result: dict[str, Any] = {
        "key": field.name,
        "label": display_name(field.name),
        "type": _type(field),
        "required": field.required,
        "helpText": field.description,
    }
    if field.options_from is not None:
        # A dropdown filled by the app's (hidden) trigger for the listing operation.
        source = field.options_from
        result["dynamic"] = f"{_KEYS[source.operation_id]}.{source.value}.{source.label}"
    if field.kind == "enum":
        result["choices"] = [{"value": v, "sample": v, "label": v} for v in field.choices]
    if field.kind == "array":
        result["list"] = True
    if field.kind == "object":
        result["dict"] = True
    if field.default is not None and not field.required and field.kind not in ("object", "array"):
        default = field.default
        result["default"] = default if isinstance(default, str) else json.dumps(default)
    if field.kind == "string" and isinstance(field.example, str):
        result["placeholder"] = field.example
    return result


def _type(field: Field) -> str:
    kind = field.item_kind if field.kind == "array" else field.kind
    if kind in _TYPES:
        return _TYPES[kind]
    if field.format == "date-time":
        return "datetime"
    if field.kind == "string" and (field.max_length or 0) > LONG_TEXT:
        return "text"
    return "string"


def output_fields(
    document: dict[str, Any], schema: dict[str, Any], prefix: str = ""
) -> list[dict[str, Any]]:
    """Zapier ``outputFields`` (key, label, type) for an answer's scalar properties, so a Zap
    shows each with a label and type; an object with known properties is flattened the way
    Zapier flattens it (``error__code``); free-form objects and lists are left to Zapier."""
    fields: list[dict[str, Any]] = []
    for name, prop in schema.get("properties", {}).items():
        prop = non_null(document, prop)
        key = f"{prefix}{name}"
        if prop.get("type") == "object":
            if prop.get("properties"):
                fields += output_fields(document, prop, f"{key}__")
            continue
        if prop.get("type") == "array":
            continue
        field = field_from_schema(document, key, prop, required=False, location="response")
        fields.append(
            {"key": key, "label": display_name(key.replace("__", "_")), "type": _type(field)}
        )
    return fields


def _sample(example: Any) -> Any:
    """Zapier wants one object: a list response gives its first item."""
    if isinstance(example, dict) and isinstance(example.get("data"), list) and example["data"]:
        return example["data"][0]
    return example


_UTILS = """'use strict';

/** Whether a value counts as "not set": Zapier sends empty strings for untouched fields. */
const isEmpty = (value) =>
  value === undefined ||
  value === null ||
  value === '' ||
  (Array.isArray(value) && value.length === 0) ||
  (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0);

/** The declared fields the user set, so optional fields left empty are never sent. */
const cleanInputData = (fields, inputData) => {
  const data = inputData || {};
  const cleaned = {};
  for (const field of fields) {
    if (!isEmpty(data[field.key])) cleaned[field.key] = data[field.key];
  }
  return cleaned;
};

/** Method, path (parameters filled in), query, headers and JSON body of a generated operation. */
const requestFor = (operation, inputData) => {
  const data = cleanInputData(operation.inputFields, inputData);
  const pick = (keys) =>
    Object.fromEntries(keys.filter((key) => key in data).map((key) => [key, data[key]]));
  const path = operation.request.path.replace(/\\{(\\w+)\\}/g, (_, key) =>
    encodeURIComponent(String(data[key] ?? '')),
  );
  const request = {
    method: operation.request.method,
    path,
    params: pick(operation.request.query),
    headers: pick(operation.request.headers),
  };
  if (operation.request.body.length > 0) request.body = pick(operation.request.body);
  return request;
};

module.exports = { cleanInputData, requestFor };
"""
