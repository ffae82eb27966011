"""The OpenAPI document is valid 3.1, generated from the routes, and covers every one."""

from __future__ import annotations

from typing import Any

import pytest
from falcon import testing
from openapi_spec_validator import validate

from backend.api.app import routes
from backend.context import Context


@pytest.fixture
def document(api: testing.TestClient) -> dict[str, Any]:
    result = api.simulate_get("/openapi.json")
    assert result.status_code == 200
    return dict(result.json)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_and_responder_is_documented(document: dict[str, Any], ctx: Context) -> None:
    for path, resource, _ in routes(ctx):
        responders = {m for m in ("get", "post", "patch", "delete") if hasattr(resource, f"on_{m}")}
        assert set(document["paths"][path]) == responders, path


def test_submission_is_documented_as_the_api_behaves(document: dict[str, Any]) -> None:
    post = document["paths"]["/v1/video/generations"]["post"]
    assert post["operationId"] == "createVideoGeneration"
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/GenerationCreate"
    )
    assert post["responses"]["202"]["headers"]["Location"]
    for status in ("401", "402", "422"):
        problem = post["responses"][status]["content"]["application/problem+json"]
        assert problem["schema"]["$ref"].endswith("/Problem")
    create = document["components"]["schemas"]["GenerationCreate"]
    assert set(create["required"]) == {"model", "prompt"}
    assert create["properties"]["duration"]["enum"] == ["5s", "10s"]


def test_public_endpoints_need_no_key_and_the_rest_do(document: dict[str, Any]) -> None:
    assert document["paths"]["/v1/signup"]["post"]["security"] == []
    assert "security" not in document["paths"]["/v1/account"]["get"]
    assert document["security"] == [{"bearerAuth": []}]


def test_every_operation_that_takes_a_body_declares_json_only_and_its_415(
    document: dict[str, Any],
) -> None:
    with_body = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if "requestBody" in op
    ]
    assert len(with_body) >= 6
    for path, method, op in with_body:
        assert list(op["requestBody"]["content"]) == ["application/json"], (path, method)
        unsupported = op["responses"]["415"]
        assert "Content-Type" in unsupported["description"], (path, method)
        assert unsupported["content"]["application/problem+json"]["schema"]["$ref"].endswith(
            "/Problem"
        )


def test_signup_documents_both_answers_and_its_link(document: dict[str, Any]) -> None:
    signup = document["paths"]["/v1/signup"]["post"]["responses"]
    assert signup["202"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SignupAccepted"
    )
    assert signup["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SignupResponse"
    )
    link = document["paths"]["/v1/signup/verify"]
    assert link["get"]["security"] == link["post"]["security"] == []
    assert "text/html" in link["get"]["responses"]["200"]["content"]
    assert {"404", "410"} <= set(link["post"]["responses"])
