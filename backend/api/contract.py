"""genhook's published contract as files: one JSON Schema (2020-12) per model the API
reads or writes, and the OpenAPI 3.1 document, in ``schemas/``.

The no-code integrations are generated from these files, so they are committed, and the
tests fail when the code would export anything else (``genhook schemas export`` rewrites
them). The same document is served at ``/openapi.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from backend.api.app import WEBHOOKS, openapi_document, routes
from backend.api.openapi import document_models, operations
from backend.context import Context

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
OPENAPI_FILE = "openapi.json"
#: Where the contract lives in the repository.
DEFAULT_DIR = Path("schemas")


def contract_files(ctx: Context) -> dict[str, str]:
    """File name -> exact text of every file of the contract."""
    ops = operations(routes(ctx))
    requests = {m for _, _, op, _ in ops for m in (op.request, op.query) if m is not None}
    files = {
        f"{model.__name__}.schema.json": _dump(_schema(model, model in requests))
        for model in sorted(document_models(ops, WEBHOOKS), key=lambda m: m.__name__)
    }
    files[OPENAPI_FILE] = _dump(openapi_document(ctx))
    return files


def export(ctx: Context, directory: Path) -> list[Path]:
    """Write the contract into ``directory``, removing files it no longer has."""
    directory.mkdir(parents=True, exist_ok=True)
    files = contract_files(ctx)
    for stale in directory.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def _schema(model: type[BaseModel], is_request: bool) -> dict[str, Any]:
    """The model's JSON Schema: as the API validates it for what clients send, as it
    serializes it for what they receive."""
    mode: JsonSchemaMode = "validation" if is_request else "serialization"
    body = model.model_json_schema(mode=mode)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": f"{model.__name__}.schema.json", **body}


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
