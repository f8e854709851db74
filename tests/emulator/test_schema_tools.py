"""Structured output and forced function calls: generated documents validate against the schema."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiproxy.emulator.schema_example import example_for

from .conftest import GEN, KEY, check_genai, req


def validate(instance: Any, schema: dict, root: dict | None = None) -> None:
    """A small JSON-Schema/OpenAPI-subset validator (enough for the keywords the generator handles)."""
    root = root or schema
    while "$ref" in schema:
        node: Any = root
        for k in schema["$ref"][2:].split("/"):
            node = node[k]
        schema = node
    if "const" in schema:
        assert instance == schema["const"]
    if "enum" in schema:
        assert instance in schema["enum"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            errors = 0
            for sub in schema[key]:
                try:
                    validate(instance, sub, root)
                except AssertionError:
                    errors += 1
            assert errors < len(schema[key])
    for sub in schema.get("allOf", ()):
        validate(instance, sub, root)
    types = schema.get("type")
    if types is None:
        return
    types = [t.lower() for t in (types if isinstance(types, list) else [types])]
    if instance is None:
        assert "null" in types or schema.get("nullable")
        return
    py = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}
    assert any(isinstance(instance, py[t]) for t in types if t in py), (instance, types)
    if isinstance(instance, dict):
        for name in schema.get("required", ()):
            assert name in instance
        for name, value in instance.items():
            validate(value, schema["properties"][name], root)
    if isinstance(instance, list):
        assert len(instance) >= schema.get("minItems", 0)
        for item in instance:
            validate(item, schema.get("items", {}), root)
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        assert instance >= schema.get("minimum", instance) and instance <= schema.get("maximum", instance)
    if isinstance(instance, str):
        assert schema.get("minLength", 0) <= len(instance) <= schema.get("maxLength", 10**9)


SCHEMAS = {
    "openapi": {"type": "OBJECT", "properties": {
        "name": {"type": "STRING"}, "age": {"type": "INTEGER", "minimum": 18},
        "mood": {"type": "STRING", "enum": ["happy", "sad"]}, "nick": {"type": "STRING", "nullable": True},
        "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 2},
        "ok": {"type": "BOOLEAN"}, "score": {"type": "NUMBER", "maximum": 0.5}},
        "required": ["name", "age"], "propertyOrdering": ["name", "age"]},
    "jsonschema": {"type": "object", "additionalProperties": False, "$defs": {
        "item": {"type": "object", "properties": {"id": {"type": "integer"}, "kind": {"const": "x"}},
                 "required": ["id", "kind"]}},
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
                       "maybe": {"type": ["string", "null"], "minLength": 20},
                       "either": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 3}]},
                       "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}},
                                           "required": ["a"]}]},
                       "when": {"type": "string", "format": "date-time"}},
        "required": ["items", "maybe", "either", "both", "when"]},
    "array": {"type": "array", "items": {"type": "number"}},
    "enum": {"type": "STRING", "enum": ["Positive", "Negative"]},
}


@pytest.mark.parametrize("name", list(SCHEMAS))
async def test_json_reply_validates(emu, name):
    schema = SCHEMAS[name]
    field = "responseJsonSchema" if name == "jsonschema" else "responseSchema"
    body = req("x", generationConfig={"responseMimeType": "application/json", field: schema})
    b = await (await emu.post(GEN.format("gemini-2.5-flash"), json=body, headers=KEY)).json()
    check_genai(b)
    doc = json.loads(b["candidates"][0]["content"]["parts"][0]["text"])
    validate(doc, schema)
    assert doc == example_for(schema)


async def test_json_reply_without_schema_is_json(emu):
    body = req("x", generationConfig={"responseMimeType": "application/json"})
    b = await (await emu.post(GEN.format("gemini-2.5-flash"), json=body, headers=KEY)).json()
    assert isinstance(json.loads(b["candidates"][0]["content"]["parts"][0]["text"]), dict)


TOOLS = [{"functionDeclarations": [
    {"name": "skip_me", "description": "x", "parameters": {"type": "OBJECT", "properties": {}}},
    {"name": "get_weather", "description": "Weather", "parametersJsonSchema": SCHEMAS["jsonschema"]},
]}]


@pytest.mark.parametrize("mode,allowed,expected", [("ANY", ["get_weather"], "get_weather"), ("ANY", None, "skip_me"),
                                                   ("AUTO", None, None), ("NONE", None, None)])
async def test_tool_modes(emu, mode, allowed, expected):
    fcc: dict = {"mode": mode}
    if allowed:
        fcc["allowedFunctionNames"] = allowed
    body = req("x", tools=TOOLS, toolConfig={"functionCallingConfig": fcc})
    b = await (await emu.post(GEN.format("gemini-3-flash-preview"), json=body, headers=KEY)).json()
    check_genai(b)
    calls = [p["functionCall"] for p in b["candidates"][0]["content"]["parts"] if "functionCall" in p]
    if expected is None:
        assert calls == []
        return
    assert [c["name"] for c in calls] == [expected]
    if expected == "get_weather":
        validate(calls[0]["args"], SCHEMAS["jsonschema"])
    first = next(p for p in b["candidates"][0]["content"]["parts"] if "functionCall" in p)
    assert "thoughtSignature" in first and "id" in first["functionCall"]
