"""Client request validation: unknown fields ignored, wrong types a 400 naming the parameter."""

from __future__ import annotations

from typing import Any

import pytest

from aiproxy.errors import ProxyError
from aiproxy.openai.types import parse_chat_request, parse_embeddings_request

OK_MSG = [{"role": "user", "content": "hi"}]

BAD = [
    pytest.param({"messages": OK_MSG}, "model", "missing_required_parameter", id="missing-model"),
    pytest.param({"model": "gpt-4"}, "messages", "missing_required_parameter", id="missing-messages"),
    pytest.param({"model": "", "messages": OK_MSG}, "model", "invalid_value", id="empty-model"),
    pytest.param({"model": 5, "messages": OK_MSG}, "model", "invalid_value", id="model-not-string"),
    pytest.param({"model": "m", "messages": "hi"}, "messages", "invalid_value", id="messages-not-list"),
    pytest.param({"model": "m", "messages": []}, "messages", "invalid_value", id="messages-empty"),
    pytest.param({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter",
                 id="role-missing"),
    pytest.param({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value",
                 id="role-unknown"),
    pytest.param({"model": "m", "messages": [OK_MSG[0], {"role": "user", "content": 5}]}, "messages[1].content",
                 "invalid_value", id="content-number"),
    pytest.param({"model": "m", "messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content",
                 "invalid_value", id="part-without-type"),
    pytest.param({"model": "m", "messages": OK_MSG, "temperature": "hot"}, "temperature", "invalid_value",
                 id="temperature-type"),
    pytest.param({"model": "m", "messages": OK_MSG, "temperature": 3}, "temperature", "invalid_value",
                 id="temperature-range"),
    pytest.param({"model": "m", "messages": OK_MSG, "top_p": 1.5}, "top_p", "invalid_value", id="top_p-range"),
    pytest.param({"model": "m", "messages": OK_MSG, "max_tokens": 0}, "max_tokens", "invalid_value", id="max_tokens-0"),
    pytest.param({"model": "m", "messages": OK_MSG, "max_completion_tokens": "lots"}, "max_completion_tokens",
                 "invalid_value", id="max_completion_tokens-type"),
    pytest.param({"model": "m", "messages": OK_MSG, "stop": 5}, "stop", "invalid_value", id="stop-number"),
    pytest.param({"model": "m", "messages": OK_MSG, "stop": list("abcdef")}, "stop", "invalid_value",
                 id="stop-too-many"),
    pytest.param({"model": "m", "messages": OK_MSG, "stream": "maybe"}, "stream", "invalid_value", id="stream-type"),
    pytest.param({"model": "m", "messages": OK_MSG, "stream_options": {"include_usage": "x"}},
                 "stream_options.include_usage", "invalid_value", id="include_usage-type"),
    pytest.param({"model": "m", "messages": OK_MSG, "n": 0}, "n", "invalid_value", id="n-0"),
    pytest.param({"model": "m", "messages": OK_MSG, "presence_penalty": 9}, "presence_penalty", "invalid_value",
                 id="presence_penalty-range"),
]


@pytest.mark.parametrize(("body", "param", "code"), BAD)
def test_bad_requests_name_the_parameter(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(ProxyError) as info:
        parse_chat_request(body)
    err = info.value
    assert err.status == 400
    assert err.body()["error"] == {"message": err.message, "type": "invalid_request_error", "param": param,
                                   "code": code}
    assert f"'{param}'" in err.message


@pytest.mark.parametrize("body", [[], "text", 5, None], ids=["list", "string", "number", "null"])
def test_body_must_be_an_object(body: Any) -> None:
    with pytest.raises(ProxyError) as info:
        parse_chat_request(body)
    assert (info.value.status, info.value.code) == (400, "invalid_json")


def test_unknown_fields_are_ignored_and_known_ones_read() -> None:
    req = parse_chat_request({
        "model": "gpt-4", "messages": OK_MSG, "stream": True, "stream_options": {"include_usage": True},
        "max_tokens": 10, "max_completion_tokens": 20, "user": "u", "user_id": "billing-7",
        "logit_bias": {"50256": -100}, "store": False, "metadata": {"a": "b"}, "service_tier": "auto",
    })
    assert (req.stream, req.include_usage, req.output_limit, req.billing_user) == (True, True, 20, "billing-7")


@pytest.mark.parametrize(("extra", "who"),
                         [({}, "anonymous"), ({"user": "u1"}, "u1"), ({"user": "u1", "user_id": "b2"}, "b2")])
def test_billing_user_prefers_user_id_then_user(extra: dict[str, str], who: str) -> None:
    assert parse_chat_request({"model": "m", "messages": OK_MSG, **extra}).billing_user == who


def test_include_usage_defaults_off() -> None:
    req = parse_chat_request({"model": "m", "messages": OK_MSG, "stream": True})
    assert (req.include_usage, req.output_limit) == (False, None)


# ---- every field by type (issue 11 item 1) ----------------------------------------------------

def with_message(**message: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", **message}]}


def part(**fields: Any) -> dict[str, Any]:
    return with_message(content=[fields])


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
TYPE_ERRORS = [
    pytest.param(part(type="text", text=123), "messages[0].content[0].text", id="text-number"),
    pytest.param(part(type="text", text=True), "messages[0].content[0].text", id="text-bool"),
    pytest.param(part(type="text", text=None), "messages[0].content[0].text", id="text-null"),
    pytest.param(part(type="text"), "messages[0].content[0].text", id="text-missing"),
    pytest.param(part(type="hologram"), "messages[0].content[0].type", id="unknown-part-type"),
    pytest.param(part(type="image_url", image_url={"url": 5}), "messages[0].content[0].image_url.url", id="url-number"),
    pytest.param(part(type="image_url", image_url=[1]), "messages[0].content[0].image_url", id="image_url-array"),
    pytest.param(part(type="image_url", image_url={"url": "data:x", "detail": 1}),
                 "messages[0].content[0].image_url.detail", id="detail-number"),
    pytest.param(part(type="input_audio", input_audio=[1]), "messages[0].content[0].input_audio", id="audio-array"),
    pytest.param(part(type="input_audio", input_audio={"data": {}}), "messages[0].content[0].input_audio.data",
                 id="audio-data-object"),
    pytest.param(part(type="file", file={"file_data": "aGk=", "filename": 5}), "messages[0].content[0].file.filename",
                 id="filename-number"),
    pytest.param(part(type="file", file="aGk="), "messages[0].content[0].file", id="file-string"),
    pytest.param(part(type="refusal", refusal=False), "messages[0].content[0].refusal", id="refusal-bool"),
    pytest.param(with_message(name=5, content="x"), "messages[0].name", id="name-number"),
    pytest.param({"model": "m", "messages": [{"role": "tool", "tool_call_id": 7, "content": "x"}]},
                 "messages[0].tool_call_id", id="tool_call_id-number"),
    pytest.param({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f",
                  "arguments": {}}}]}]}, "messages[0].tool_calls[0].function.arguments", id="arguments-object"),
    pytest.param({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{**CALL, "extra_content":
                  {"google": 5}}]}]}, "messages[0].tool_calls[0].extra_content.google", id="extra_content-google"),
    pytest.param({**with_message(content="x"), "tools": [{"type": "function", "function": {"name": "f",
                  "description": 5}}]}, "tools[0].function.description", id="tool-description-number"),
    pytest.param({**with_message(content="x"), "tools": [{"type": "function", "function": {"name": "f",
                  "parameters": []}}]}, "tools[0].function.parameters", id="tool-parameters-array"),
    pytest.param({**with_message(content="x"), "tools": [{"type": "web_search"}]}, "tools[0].type", id="tool-type"),
    pytest.param({**with_message(content="x"), "tool_choice": 1}, "tool_choice", id="tool_choice-number"),
    pytest.param({**with_message(content="x"), "response_format": {"type": 5}}, "response_format.type",
                 id="response_format-type"),
    pytest.param({**with_message(content="x"), "response_format": {"type": "json_schema", "json_schema": {"name": "n",
                  "schema": [], "strict": True}}}, "response_format.json_schema.schema", id="schema-array"),
    pytest.param({**with_message(content="x"), "max_tokens": True}, "max_tokens", id="max_tokens-bool"),
    pytest.param({**with_message(content="x"), "max_tokens": "5"}, "max_tokens", id="max_tokens-string"),
    pytest.param({**with_message(content="x"), "temperature": True}, "temperature", id="temperature-bool"),
    pytest.param({**with_message(content="x"), "stream": 1}, "stream", id="stream-number"),
    pytest.param({**with_message(content="x"), "logprobs": "yes"}, "logprobs", id="logprobs-string"),
    pytest.param({**with_message(content="x"), "user": 5}, "user", id="user-number"),
]


@pytest.mark.parametrize(("body", "param"), TYPE_ERRORS)
def test_wrong_types_are_400_naming_the_field_path(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ProxyError) as info:
        parse_chat_request(body)
    err = info.value.body()["error"]
    assert (info.value.status, err["type"], err["param"]) == (400, "invalid_request_error", param)
    assert f"'{param}'" in err["message"]


def test_unknown_part_type_lists_the_known_ones() -> None:
    with pytest.raises(ProxyError) as info:
        parse_chat_request(part(type="hologram"))
    assert "'hologram'" in info.value.message and "'input_audio'" in info.value.message


REAL_CLIENT_SHAPES = [
    pytest.param({"role": "assistant", "content": None, "tool_calls": [CALL]}, id="assistant-null-with-tool-calls"),
    pytest.param({"role": "tool", "tool_call_id": "c1", "content": None}, id="tool-null-content"),
    pytest.param({"role": "assistant", "content": "x", "refusal": None, "audio": None, "annotations": []},
                 id="sdk-echoed-assistant-fields"),
    pytest.param({"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]},
                 id="image_url-as-a-string"),
    pytest.param({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,", "detail": "low"},
                                                "cache_control": {"type": "ephemeral"}}]}, id="extra-part-fields"),
    pytest.param({"role": "user",
                  "content": [{"type": "input_audio", "input_audio": {"data": "AA==", "format": "mp3"}}]},
                 id="lotti-audio"),
    pytest.param({"role": "user", "content": [{"type": "file", "file": {"file_data": "data:application/pdf;base64,AA==",
                                                                          "filename": "a.pdf"}}]}, id="file"),
    pytest.param({"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]}, id="refusal-part"),
    pytest.param({"role": "assistant", "content": None, "tool_calls": [{**CALL, "extra_content": {"google": {
        "thought_signature": "c2ln"}}}]}, id="google-extra-content"),
]


@pytest.mark.parametrize("message", REAL_CLIENT_SHAPES)
def test_what_real_clients_send_is_accepted(message: dict[str, Any]) -> None:
    req = parse_chat_request({"model": "m", "messages": [message], "temperature": 1, "tool_choice": "auto",
                              "tools": [{"type": "function", "function": {"name": "f", "strict": True,
                                         "parameters": {"type": "object", "additionalProperties": False}}}],
                              "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}}})
    assert req.messages[0].content == message.get("content")  # parts stay the client's own dicts


EMBEDDING_ERRORS = [
    pytest.param({"input": "x"}, "model", "missing_required_parameter", id="model-missing"),
    pytest.param({"model": 5, "input": "x"}, "model", "invalid_value", id="model-number"),
    pytest.param({"model": "e"}, "input", "missing_required_parameter", id="input-missing"),
    pytest.param({"model": "e", "input": [1, 2]}, "input", "unsupported_value", id="token-array"),
    pytest.param({"model": "e", "input": [[1, 2]]}, "input", "unsupported_value", id="token-arrays"),
    pytest.param({"model": "e", "input": ["a", None]}, "input[1]", "invalid_value", id="input-item-null"),
    pytest.param({"model": "e", "input": ["a", ""]}, "input[1]", "invalid_value", id="input-item-empty"),
    pytest.param({"model": "e", "input": {"a": 1}}, "input", "invalid_value", id="input-object"),
    pytest.param({"model": "e", "input": ["a"] * 2049}, "input", "invalid_value", id="too-many-inputs"),
    pytest.param({"model": "e", "input": "x", "encoding_format": False}, "encoding_format", "invalid_value",
                 id="encoding_format-bool"),
    pytest.param({"model": "e", "input": "x", "dimensions": True}, "dimensions", "invalid_value", id="dimensions-bool"),
    pytest.param({"model": "e", "input": "x", "dimensions": 1.5}, "dimensions", "invalid_value", id="dimensions-float"),
    pytest.param({"model": "e", "input": "x", "user": 5}, "user", "invalid_value", id="user-number"),
]


@pytest.mark.parametrize(("body", "param", "code"), EMBEDDING_ERRORS)
def test_embedding_fields_are_typed(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(ProxyError) as info:
        parse_embeddings_request(body)
    assert (info.value.status, info.value.param, info.value.code) == (400, param, code)


def test_embedding_request_reads_text_and_defaults() -> None:
    req = parse_embeddings_request({"model": "e", "input": "hi", "encoding_format": None, "extra": [1]})
    assert (req.texts, req.format, req.dimensions) == (["hi"], "float", None)
