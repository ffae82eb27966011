"""The contract in ``schemas/``: what the code exports, committed; valid JSON Schema and
OpenAPI 3.1; and every text a no-code node turns into its UI is there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from falcon import testing
from jsonschema import Draft202012Validator

from backend.api.contract import OPENAPI_FILE, contract_files
from backend.context import Context

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
REGENERATE = "run `genhook schemas export` and commit schemas/"


@pytest.fixture
def exported(ctx: Context) -> dict[str, str]:
    return contract_files(ctx)


@pytest.fixture
def document(exported: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(exported[OPENAPI_FILE])
    return result


def test_the_committed_contract_is_exactly_what_the_code_exports(
    exported: dict[str, str],
) -> None:
    committed = {path.name: path.read_text() for path in SCHEMAS.glob("*.json")}

    assert sorted(committed) == sorted(exported), REGENERATE
    for name, text in exported.items():
        assert committed[name] == text, f"schemas/{name} is stale: {REGENERATE}"


def test_the_api_serves_the_committed_document(api: testing.TestClient) -> None:
    served = api.simulate_get("/openapi.json").json

    assert served == json.loads((SCHEMAS / OPENAPI_FILE).read_text())


def test_every_schema_file_is_a_valid_2020_12_json_schema(exported: dict[str, str]) -> None:
    for name, text in exported.items():
        if name == OPENAPI_FILE:
            continue
        schema = json.loads(text)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


def test_every_operation_has_an_id_a_description_and_examples(
    document: dict[str, Any],
) -> None:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            assert operation.get("operationId"), where
            assert operation.get("description"), f"{where} has no description"
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                assert "example" in body, f"{where}: the request body has no example"
            for status, response in operation["responses"].items():
                media = response.get("content", {}).get("application/json")
                if status.startswith("2") and media is not None:
                    assert "example" in media, f"{where}: the {status} answer has no example"


def test_every_field_a_person_fills_is_described(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    filled: set[str] = set()
    for methods in document["paths"].values():
        for operation in methods.values():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                filled.add(body["schema"]["$ref"].rsplit("/", 1)[-1])
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    assert parameter["schema"].get("description"), parameter["name"]
    for name in sorted(filled):
        for field, prop in schemas[name].get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"


def test_webhooks_are_documented_with_their_signature_headers(document: dict[str, Any]) -> None:
    events = document["webhooks"]

    assert set(events) >= {
        "video.generation.completed",
        "video.generation.failed",
        "video.generation.canceled",
        "video.generation.status_changed",
    }
    for event in events.values():
        headers = {p["name"] for p in event["post"]["parameters"] if p["in"] == "header"}
        assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= headers
