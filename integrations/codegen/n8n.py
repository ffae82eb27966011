"""The n8n half: declarative ``INodeProperties`` for the hand-written ``Genhook.node.ts``.

Per resource, a ``<Resource>Description.ts`` holds ``<resource>Operations`` (the Operation
selector, each option carrying its ``routing.request``) and ``<resource>Fields`` (what the
operations ask for); ``index.ts`` adds the Resource selector and ``genhookProperties``, all
of them in display order. Required fields are top-level properties; optional ones are
options of one "Additional Fields" collection, each with its own ``routing.send``, so n8n
sends a field only when the user added it. Texts follow the linter of ``@n8n/node-cli``
(``eslint-plugin-n8n-nodes-base``): title-cased display names, ``ID``/``URL``/``JSON`` in
capitals, no final period on a one-sentence description, options sorted by name, Limit
defaulting to 50.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from integrations.codegen.literal import camel, display_name, header, literal, quote, sort_key
from integrations.codegen.openapi import LONG_TEXT, Field, Operation, OptionsSource, read_operation

#: Where the generated files go, relative to the repository root.
DIRECTORY = "integrations/n8n-node/nodes/Genhook/generated"


@dataclass(frozen=True)
class NodeOperation:
    """Where an OpenAPI operation sits in the node: its resource, value, name and action
    (the action is also the AI tool's name, so it is written, not derived)."""

    operation_id: str
    resource: str
    value: str
    name: str
    action: str


#: Resource value -> name shown in the Resource selector.
RESOURCES = {"account": "Account", "generation": "Generation", "model": "Model"}

OPERATIONS = (
    NodeOperation("createVideoGeneration", "generation", "create", "Create", "Create a generation"),
    NodeOperation("getVideoGeneration", "generation", "get", "Get", "Get a generation"),
    NodeOperation(
        "listVideoGenerations", "generation", "getAll", "Get Many", "Get many generations"
    ),
    NodeOperation("cancelVideoGeneration", "generation", "cancel", "Cancel", "Cancel a generation"),
    NodeOperation("listModels", "model", "getAll", "Get Many", "Get many models"),
    NodeOperation("getAccount", "account", "get", "Get", "Get the account"),
)

_TYPE_IMPORT = "import type { INodeProperties } from 'n8n-workflow';\n"
_JSON_VALUE = '={{ typeof $value === "string" ? JSON.parse($value) : $value }}'
#: What the linter demands of a parameter named ``limit``.
_LIMIT = {"default": 50, "description": "Max number of results to return"}


def files(document: dict[str, Any]) -> dict[str, str]:
    """Repository-relative path -> text of every generated n8n file."""
    out = {}
    for resource, props in properties(document).items():
        name = RESOURCES[resource]
        text = header() + _TYPE_IMPORT
        text += f"\nexport const {resource}Operations: INodeProperties[] = "
        text += literal([props["operation"]]) + ";\n"
        text += f"\nexport const {resource}Fields: INodeProperties[] = "
        text += literal(props["fields"]) + ";\n"
        out[f"{DIRECTORY}/{name}Description.ts"] = text
    out[f"{DIRECTORY}/index.ts"] = _index()
    return out


def properties(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Resource -> {"operation": the Operation selector, "fields": its fields}, as data."""
    result = {}
    for resource in sorted(RESOURCES):
        ops = [op for op in OPERATIONS if op.resource == resource]
        read = {op.value: read_operation(document, op.operation_id) for op in ops}
        result[resource] = {
            "operation": _operation_selector(resource, ops, read),
            "fields": [prop for op in ops for prop in _fields(op, read[op.value])],
        }
    return result


def resource_selector() -> dict[str, Any]:
    options = [{"name": RESOURCES[r], "value": r} for r in RESOURCES]
    return {
        "displayName": "Resource",
        "name": "resource",
        "type": "options",
        "noDataExpression": True,
        "options": sorted(options, key=lambda o: sort_key(o["name"])),
        "default": "generation",
    }


def text(description: str) -> str:
    """An OpenAPI description as the n8n linter wants it: HTML-safe, code in ``<code>``,
    ``ID``/``URL``/``JSON`` capitalized, a final period only on several sentences."""
    value = description.strip().replace("<", "&lt;").replace(">", "&gt;")
    value = re.sub(r"`([^`]+)`", r"<code>\1</code>", value)
    value = re.sub(r"\b[iI]d(s?)\b", r"ID\1", value)
    value = re.sub(r"\b[uU]rl(s?)\b", r"URL\1", value)
    value = re.sub(r"\b[jJ]son\b", "JSON", value)
    value = value[:1].upper() + value[1:]
    sentences = len(value.replace("e.g.", "", 1).split(". "))
    if sentences == 1 and value.endswith("."):
        value = value[:-1]
    elif sentences == 2 and not value.endswith((".", "</code>")):
        value += "."
    return value


def _operation_selector(
    resource: str, ops: list[NodeOperation], read: dict[str, Operation]
) -> dict[str, Any]:
    options = [
        {
            "name": op.name,
            "value": op.value,
            "action": op.action,
            "description": text(read[op.value].description),
            "routing": {"request": {"method": read[op.value].method, "url": _url(read[op.value])}},
        }
        for op in ops
    ]
    return {
        "displayName": "Operation",
        "name": "operation",
        "type": "options",
        "noDataExpression": True,
        "displayOptions": {"show": {"resource": [resource]}},
        "options": sorted(options, key=lambda o: sort_key(o["name"])),
        "default": ops[0].value,
    }


def _url(operation: Operation) -> str:
    """The request path; path parameters become expressions over the node's parameters."""
    if "{" not in operation.path:
        return operation.path
    return "=" + re.sub(
        r"\{(\w+)\}",
        lambda m: "{{encodeURIComponent($parameter." + camel(m.group(1)) + ")}}",
        operation.path,
    )


def _fields(op: NodeOperation, operation: Operation) -> list[dict[str, Any]]:
    show = {"show": {"resource": [op.resource], "operation": [op.value]}}
    top = [_property(f, show) for f in operation.fields if f.required]
    optional = [_property(f) for f in operation.fields if not f.required]
    if optional:
        top.append(
            {
                "displayName": "Additional Fields",
                "name": "additionalFields",
                "type": "collection",
                "placeholder": "Add Field",
                "default": {},
                "displayOptions": show,
                "options": sorted(optional, key=lambda p: sort_key(p["displayName"])),
            }
        )
    return top


def _property(field: Field, show: dict[str, Any] | None = None) -> dict[str, Any]:
    """One field as an n8n parameter: top-level and required when ``show`` is given, else
    an option of the Additional Fields collection."""
    prop: dict[str, Any] = {"displayName": display_name(field.name), "name": camel(field.name)}
    prop.update(_type(field))
    if show is not None:
        prop["required"] = True
        prop["displayOptions"] = show
    if field.options_from is not None:
        # The linter's wording for a dropdown that also takes an expression.
        prop["displayName"] += " Name or ID"
        prop["description"] = _DYNAMIC_OPTIONS_DESCRIPTION
    elif field.kind == "string" and isinstance(field.example, str):
        prop["placeholder"] = f"e.g. {field.example}"
    elif field.kind == "object" and field.example is not None:
        prop["placeholder"] = json.dumps(field.example)
    prop.setdefault("description", text(field.description))
    if field.name == "limit" and field.kind == "integer":
        prop.update(_LIMIT)
    if field.location == "header":
        # n8n's declarative `send` has no header type: a request header set from the value.
        prop["routing"] = {"request": {"headers": {field.name: "={{$value}}"}}}
    elif field.location != "path":
        send = {"type": field.location, "property": field.name}
        if field.kind == "object":
            send["value"] = _JSON_VALUE
        prop["routing"] = {"send": send}
    return prop


def _type(field: Field) -> dict[str, Any]:
    """``type``, ``default`` and the type's options, from the field's JSON Schema kind."""
    if field.options_from is not None:
        load_options = _load_options(field.options_from)
        return {"type": "options", "typeOptions": {"loadOptions": load_options}, "default": ""}
    if field.kind == "enum":
        options = sorted(({"name": _option_name(v), "value": v} for v in field.choices),
                         key=lambda o: sort_key(o["name"]))  # fmt: skip
        preferred = [v for v in (field.default, field.example) if v in field.choices]
        default = preferred[0] if preferred else options[0]["value"]
        return {"type": "options", "options": options, "default": default}
    if field.kind in ("integer", "number"):
        bounds = {"minValue": field.minimum, "maxValue": field.maximum}
        typed: dict[str, Any] = {"type": "number", "default": field.default or 0}
        if any(v is not None for v in bounds.values()):
            typed["typeOptions"] = {k: v for k, v in bounds.items() if v is not None}
        return typed
    if field.kind == "boolean":
        return {"type": "boolean", "default": bool(field.default)}
    if field.kind == "object":
        return {"type": "json", "default": "{}"}
    if field.kind == "array":
        return {"type": "string", "typeOptions": {"multipleValues": True}, "default": []}
    typed = {"type": "string", "default": field.default or ""}
    if (field.max_length or 0) > LONG_TEXT:
        typed["typeOptions"] = {"rows": 4}
    return typed


_DYNAMIC_OPTIONS_DESCRIPTION = (
    "Choose from the list, or specify an ID using an "
    '<a href="https://docs.n8n.io/code/expressions/">expression</a>'
)


def _load_options(source: OptionsSource) -> dict[str, Any]:
    """Declarative loadOptions: GET the listing, one option per item, sorted by label."""
    return {
        "routing": {
            "request": {"method": "GET", "url": source.path},
            "output": {
                "postReceive": [
                    {"type": "rootProperty", "properties": {"property": source.items_key}},
                    {"type": "setKeyValue", "properties": _choice(source)},
                    {"type": "sort", "properties": {"key": "name"}},
                ]
            },
        }
    }


def _choice(source: OptionsSource) -> dict[str, str]:
    """One dropdown choice from a listed item: its label, value and (if any) description."""
    keys = {"name": source.label, "value": source.value, "description": source.description}
    return {key: f"={{{{$responseItem.{prop}}}}}" for key, prop in keys.items() if prop}


def _option_name(value: str) -> str:
    return display_name(value) if re.fullmatch(r"[a-z_]+", value) else value


def _index() -> str:
    names = [(RESOURCES[r], r) for r in sorted(RESOURCES)]
    imports = "".join(
        f"import {{ {r}Fields, {r}Operations }} from {quote('./' + n + 'Description')};\n"
        for n, r in names
    )
    spread = "".join(f"\t...{r}Operations,\n\t...{r}Fields,\n" for _, r in names)
    exports = "".join(f"\t{r}Fields,\n\t{r}Operations,\n" for _, r in names)
    return (
        header()
        + _TYPE_IMPORT
        + "\n"
        + imports
        + "\nexport const resourceProperty: INodeProperties = "
        + literal(resource_selector())
        + ";\n\n/** Every generated property of the Genhook node, in display order. */\n"
        + "export const genhookProperties: INodeProperties[] = [\n\tresourceProperty,\n"
        + spread
        + "];\n\nexport {\n"
        + exports
        + "};\n"
    )
