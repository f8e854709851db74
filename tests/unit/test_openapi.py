"""/openapi.json describes request bodies from the pydantic models that validate them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from aiproxy.openai.openapi import SPEC
from aiproxy.openai.types import ChatRequest, EmbeddingsRequest
from aiproxy.responses.request import ResponsesRequest

REF = "#/components/schemas/{model}"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@pytest.mark.parametrize(("path", "model"), [("/v1/chat/completions", ChatRequest),
                                             ("/v1/embeddings", EmbeddingsRequest),
                                             ("/v1/responses", ResponsesRequest)])
def test_request_body_is_the_models_schema(path: str, model: type[BaseModel]) -> None:
    body = SPEC["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": REF.format(model=model.__name__)}
    generated = model.model_json_schema(ref_template=REF)
    nested = generated.pop("$defs", {})
    schemas = SPEC["components"]["schemas"]
    assert schemas[model.__name__] == generated
    assert all(schemas[name] == schema for name, schema in nested.items())
    # every field the server reads is described, under the name clients send
    assert set(schemas[model.__name__]["properties"]) == {f.alias or name for name, f in model.model_fields.items()}


def test_every_reference_resolves() -> None:
    names = set(SPEC["components"]["schemas"])
    assert {ref.removeprefix("#/components/schemas/") for ref in _refs(SPEC)} <= names
