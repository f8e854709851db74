"""Golden tests for tools, tool turns, thought-signature ids and thinking (issue 3).

Each case is named after the bug it prevents in other gateways.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from aiproxy.errors import ProxyError
from aiproxy.openai.fold import ChunkFolder
from aiproxy.openai.types import parse_chat_request
from aiproxy.providers.gemini.request import build_gemini_request
from aiproxy.providers.gemini.response import StreamTranslator
from aiproxy.providers.gemini.thinking import thinking_for
from aiproxy.providers.gemini.tools import decode_call_signature, encode_call_id

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "strict": True,
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def gemini(model: str = "gemini-2.5-flash", **body: Any) -> dict[str, Any]:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return build_gemini_request(parse_chat_request({"model": "m", **body}), model)


def test_lotti_schema_with_additional_properties_false_goes_as_json_schema() -> None:
    out = gemini(tools=[WEATHER])
    decl = out["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather" and decl["description"] == "Weather for a city"
    assert decl["parametersJsonSchema"]["additionalProperties"] is False
    assert decl["parametersJsonSchema"]["properties"]["unit"]["enum"] == ["c", "f"]
    assert "$schema" not in decl["parametersJsonSchema"] and "strict" not in decl


def test_schema_key_dropped_at_every_depth_in_tool_parameters_as_in_response_formats() -> None:
    nested = {"name": "save", "parameters": {
        "type": "object", "$schema": "x",
        "properties": {"$schema": {"type": "string"}, "doc": {"type": "object", "$schema": "y",
                                                             "properties": {"n": {"type": "integer"}}}},
        "$defs": {"D": {"$schema": "z", "type": "string"}}}}
    decl = gemini(tools=[{"type": "function", "function": nested}])["tools"][0]["functionDeclarations"][0]
    fmt = gemini(response_format={"type": "json_schema",
                                  "json_schema": {"name": "save", "schema": nested["parameters"]}})
    expected = {"type": "object", "properties": {"$schema": {"type": "string"},  # a property's name is kept
                                                 "doc": {"type": "object", "properties": {"n": {"type": "integer"}}}},
                "$defs": {"D": {"type": "string"}}}
    assert decl["parametersJsonSchema"] == expected
    assert fmt["generationConfig"]["responseJsonSchema"] == expected


SANITIZE_CASES = [
    pytest.param(
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}},
         "$defs": {"A": {"type": "integer", "title": "A"}},
         "additionalProperties": False},
        {"type": "object", "properties": {"a": {"type": "integer", "title": "A"}}},
        id="refs-inlined-and-additionalProperties-dropped",
    ),
    pytest.param(
        {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
        {"type": "object", "properties": {"a": {"type": "string", "nullable": True}}},
        id="anyOf-null-becomes-nullable",
    ),
    pytest.param(
        {"type": "object", "properties": {"a": {"type": ["integer", "null"]}}},
        {"type": "object", "properties": {"a": {"type": "integer", "nullable": True}}},
        id="type-list-with-null-becomes-nullable",
    ),
    pytest.param(
        {"type": "object", "properties": {"kind": {"const": "x"}}},
        {"type": "object", "properties": {"kind": {"enum": ["x"], "type": "string"}}},
        id="const-becomes-enum",
    ),
    pytest.param(
        {"type": "object", "properties": {"n": {"type": "integer", "enum": [1, 2]}}},
        {"type": "object", "properties": {"n": {"type": "integer"}}},
        id="non-string-enum-dropped-not-rejected",
    ),
]


@pytest.mark.parametrize(("schema", "expected"), SANITIZE_CASES)
def test_older_models_get_a_sanitized_openapi_schema(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    decl = gemini("gemini-2.0-flash", tools=[tool])["tools"][0]["functionDeclarations"][0]
    assert decl["parameters"] == expected


TOOL_CHOICES = [
    pytest.param("none", {"mode": "NONE"}, id="none"),
    pytest.param("auto", {"mode": "AUTO"}, id="auto"),
    pytest.param("required", {"mode": "ANY"}, id="required"),
    pytest.param({"type": "function", "function": {"name": "get_time"}},
                 {"mode": "ANY", "allowedFunctionNames": ["get_time"]}, id="named-forces-that-function"),
]


@pytest.mark.parametrize(("choice", "expected"), TOOL_CHOICES)
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    assert gemini(tools=[WEATHER, TIME], tool_choice=choice)["toolConfig"] == {"functionCallingConfig": expected}


@pytest.mark.parametrize(("choice", "param"), [({"type": "function", "function": {"name": "nope"}}, "tool_choice"),
                                                ("sometimes", "tool_choice"), ({"type": "x"}, "tool_choice.type"),
                                                ({"type": "function", "function": {"name": 5}},
                                                 "tool_choice.function.name")])
def test_bad_tool_choice_is_400_naming_it(choice: Any, param: str) -> None:
    with pytest.raises(ProxyError) as info:
        gemini(tools=[WEATHER], tool_choice=choice)
    assert info.value.status == 400 and info.value.param == param


def conversation(sig_id: str, second_id: str = "call_plain1") -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Weather in Paris and the time?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": sig_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": second_id, "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": sig_id, "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": second_id, "content": "noon"},
    ]


def test_signature_survives_through_the_tool_call_id_alone() -> None:
    """openai_dart echoes only the id: the signature must come back from it."""
    signature = base64.b64encode(b"\x12\x0a" + bytes(range(200))).decode()  # has + and /
    call_id = encode_call_id(signature, 0)
    assert decode_call_signature(call_id) == signature
    assert "+" not in call_id and "/" not in call_id and "=" not in call_id
    odd = "not-base64 signature?"
    assert decode_call_signature(encode_call_id(odd, 1)) == odd
    out = gemini("gemini-3-pro-preview", messages=conversation(call_id), tools=[WEATHER, TIME])
    model_turn = out["contents"][1]
    assert model_turn["role"] == "model"
    assert model_turn["parts"][0] == {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                      "thoughtSignature": signature}
    assert model_turn["parts"][1] == {"functionCall": {"name": "get_time", "args": {}}}


def test_signature_accepted_from_extra_content_like_googles_endpoint() -> None:
    msgs = conversation("call_x")
    msgs[1]["tool_calls"][0]["extra_content"] = {"google": {"thought_signature": "c2ln"}}
    out = gemini("gemini-3-pro-preview", messages=msgs, tools=[WEATHER, TIME])
    assert out["contents"][1]["parts"][0]["thoughtSignature"] == "c2ln"


def test_parallel_tool_results_grouped_in_one_turn_with_names_resolved() -> None:
    """Gemini needs as many functionResponse parts in one turn as the calls it made."""
    out = gemini(messages=conversation("call_a"), tools=[WEATHER, TIME])
    assert [c["role"] for c in out["contents"]] == ["user", "model", "user"]
    assert out["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
        {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
    ]


@pytest.mark.parametrize(("msg", "param"), [
    ({"role": "tool", "tool_call_id": "call_unknown", "content": "x"}, "messages[1].tool_call_id"),
    ({"role": "tool", "content": "x"}, "messages[1].tool_call_id"),
])
def test_tool_result_for_an_unknown_call_is_400(msg: dict[str, Any], param: str) -> None:
    with pytest.raises(ProxyError) as info:
        gemini(messages=[{"role": "user", "content": "hi"}, msg])
    assert info.value.status == 400 and info.value.param == param


def test_tool_call_arguments_that_are_not_json_are_400() -> None:
    msgs = conversation("call_a")
    msgs[1]["tool_calls"][0]["function"]["arguments"] = "{city: Paris"
    with pytest.raises(ProxyError) as info:
        gemini(messages=msgs)
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


THINKING = [
    pytest.param("gemini-2.5-flash", "none", {"thinkingBudget": 0}, id="flash-none-disables"),
    pytest.param("gemini-2.5-flash", "minimal", {"thinkingBudget": 0}, id="flash-minimal-lotti"),
    pytest.param("gemini-2.5-flash", "low", {"thinkingBudget": 1024}, id="flash-low"),
    pytest.param("gemini-2.5-flash-lite", "high", {"thinkingBudget": 24576}, id="lite-high"),
    pytest.param("gemini-2.5-pro", "none", {"thinkingBudget": 128}, id="pro-cannot-disable-uses-minimum"),
    pytest.param("gemini-2.5-pro", "medium", {"thinkingBudget": 8192}, id="pro-medium"),
    pytest.param("gemini-3.5-flash", "minimal", {"thinkingLevel": "minimal"}, id="g3-flash-minimal-level"),
    pytest.param("gemini-3-flash-preview", "medium", {"thinkingLevel": "medium"}, id="g3-flash-medium"),
    pytest.param("gemini-3-pro-preview", "minimal", {"thinkingLevel": "low"}, id="g3-pro-has-no-minimal"),
    pytest.param("gemini-3-pro-preview", "medium", {"thinkingLevel": "high"}, id="g3-pro-has-no-medium"),
    pytest.param("gemini-3.1-pro-preview", "medium", {"thinkingLevel": "medium"}, id="g31-pro-medium"),
]


@pytest.mark.parametrize(("model", "effort", "expected"), THINKING)
def test_reasoning_effort_maps_to_what_each_model_accepts(model: str, effort: str, expected: dict[str, Any]) -> None:
    assert thinking_for(model, effort) == expected


def test_thoughts_requested_only_when_the_client_can_receive_them() -> None:
    assert "generationConfig" not in gemini()
    cfg = gemini(reasoning_effort="low")["generationConfig"]["thinkingConfig"]
    assert cfg == {"thinkingBudget": 1024, "includeThoughts": True}
    # Thinking switched off: nothing to include.
    assert gemini(reasoning_effort="none")["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    req = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    req._think_tags = True
    thinking = build_gemini_request(req, "gemini-2.5-flash")["generationConfig"]["thinkingConfig"]
    assert thinking == {"includeThoughts": True}


def test_unknown_reasoning_effort_is_400() -> None:
    with pytest.raises(ProxyError) as info:
        gemini(reasoning_effort="extreme")
    assert info.value.param == "reasoning_effort"


def _calls_chunk(sig: str | None = "c2ln") -> dict[str, Any]:
    first: dict[str, Any] = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    if sig:
        first["thoughtSignature"] = sig
    parts = [first, {"functionCall": {"name": "get_time", "args": {}}}]
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}]}


def test_parallel_calls_get_their_own_index_and_id_and_the_signature() -> None:
    """Lotti merges streamed calls by id, then index: parallel calls must never share index 0."""
    t = StreamTranslator(completion_id="chatcmpl-1", created=1, model="m")
    [chunk] = t.feed(_calls_chunk())
    calls = chunk["choices"][0]["delta"]["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1]
    assert len({c["id"] for c in calls}) == 2
    assert decode_call_signature(calls[0]["id"]) == "c2ln" and decode_call_signature(calls[1]["id"]) is None
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert calls[1]["function"]["arguments"] == "{}"  # never empty: clients json-decode it
    # STOP arrives in a later, empty chunk: still tool_calls.
    t.feed({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP",
                            "index": 0}]})
    [final] = t.finish()
    assert final["choices"][0]["finish_reason"] == "tool_calls"


def test_parallel_tool_calls_false_keeps_only_the_first_call() -> None:
    t = StreamTranslator(completion_id="chatcmpl-1", created=1, model="m", max_tool_calls=1)
    folder = ChunkFolder()
    for c in t.feed(_calls_chunk()) + t.finish():
        folder.add(c)
    message = folder.result()["choices"][0]["message"]
    assert [c["function"]["name"] for c in message["tool_calls"]] == ["get_weather"]
    assert message["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert message["content"] is None
