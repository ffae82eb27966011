"""The examples and descriptions the OpenAPI document carries are true to the code.

The no-code nodes turn them into their UI: a field's description is its help text, an
example its placeholder, a model's example the sample a builder maps fields from. So every
example must be one the API itself would accept (for what clients send) or send (for what
they receive), and every field a person fills in must say what it is for.
"""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from backend.api.app import WEBHOOKS, routes
from backend.api.openapi import operations
from backend.context import Context
from backend.schemas.common import Problem


def examples_of(model: type[BaseModel]) -> list[Any]:
    """The examples a model declares in ``model_config["json_schema_extra"]``."""
    extra = model.model_config.get("json_schema_extra")
    found = extra.get("examples", []) if isinstance(extra, dict) else []
    return list(found) if isinstance(found, list) else []


def with_nested(models: set[type[BaseModel]]) -> set[type[BaseModel]]:
    """``models`` and every model their fields hold, however deep."""
    found: set[type[BaseModel]] = set()

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in found:
                return
            found.add(annotation)
            for field in annotation.model_fields.values():
                visit(field.annotation)
        for arg in get_args(annotation):
            visit(arg)

    for model in models:
        visit(model)
    return found


class Contract:
    """The models the document names, sorted into what clients send and what they get."""

    def __init__(self, ctx: Context) -> None:
        ops = [op for _, _, op, _ in operations(routes(ctx))]
        self.bodies = {op.request for op in ops if op.request is not None}
        self.queries = {op.query for op in ops if op.query is not None}
        answers = {model for op in ops for model in op.responses.values() if model is not None}
        received = answers | {model for _, model in WEBHOOKS.values()} | {Problem}
        #: Every model the document shows as a JSON body, request or answer.
        self.shown = self.bodies | received
        #: What genhook writes, nested models included.
        self.sent = with_nested(received)
        #: What a person fills in: bodies and query strings.
        self.filled = self.bodies | self.queries
        self.everything = with_nested(self.shown | self.queries)


@pytest.fixture
def contract(ctx: Context) -> Contract:
    return Contract(ctx)


def as_json(value: Any) -> Any:
    """``value`` as it travels: through JSON and back."""
    return json.loads(json.dumps(value))


def test_every_body_the_document_shows_has_an_example(contract: Contract) -> None:
    missing = sorted(m.__name__ for m in contract.shown if not examples_of(m))

    assert missing == []


def test_what_clients_send_is_accepted_as_given(contract: Contract) -> None:
    """Validating an example and sending the result again gives the same request; the
    fields the example sets are exactly the fields the request sets."""
    for model in sorted(contract.filled, key=lambda m: m.__name__):
        for example in examples_of(model):
            parsed = model.model_validate(as_json(example))
            again = model.model_validate(
                as_json(parsed.model_dump(mode="json", exclude_unset=True))
            )

            assert again == parsed, model.__name__
            assert parsed.model_fields_set == set(example), model.__name__


def test_each_field_example_is_accepted_in_its_request(contract: Contract) -> None:
    """A field's example is a value the API takes (its own checks too, not only the schema's),
    shown in place in the model's example."""
    for model in sorted(contract.filled, key=lambda m: m.__name__):
        base = (examples_of(model) or [{}])[0]
        for name, field in model.model_fields.items():
            for value in field.examples or []:
                model.model_validate(as_json({**base, name: value}))


def test_what_clients_receive_is_exactly_what_genhook_would_send(contract: Contract) -> None:
    """An answer's example is complete: every field, in the form genhook writes it."""
    for model in sorted(contract.sent, key=lambda m: m.__name__):
        for example in examples_of(model):
            sent = model.model_validate(as_json(example)).model_dump(mode="json")

            assert sent == example, model.__name__


def test_every_example_agrees_with_the_published_json_schema(contract: Contract) -> None:
    """What a node validates against (the schema) accepts what the node shows (the examples),
    model examples and field examples alike."""
    for model in sorted(contract.everything, key=lambda m: m.__name__):
        mode = "validation" if model in contract.filled else "serialization"
        schema = model.model_json_schema(mode=mode)
        for example in examples_of(model):
            Draft202012Validator(schema).validate(as_json(example))
        for name, prop in schema.get("properties", {}).items():
            field_schema = {"$defs": schema.get("$defs", {}), **prop}
            for example in prop.get("examples", []):
                errors = list(Draft202012Validator(field_schema).iter_errors(example))
                assert errors == [], f"{model.__name__}.{name}: {errors[0].message}"


def test_every_field_a_person_fills_in_is_described(contract: Contract) -> None:
    undescribed = sorted(
        f"{model.__name__}.{name}"
        for model in contract.filled
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    )

    assert undescribed == []


def test_every_field_genhook_answers_with_is_described(contract: Contract) -> None:
    undescribed = sorted(
        f"{model.__name__}.{name}"
        for model in contract.sent
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    )

    assert undescribed == []
