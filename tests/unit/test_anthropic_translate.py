"""Golden tables for the pure Anthropic translators: request, stream events, usage, errors."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from aiproxy.errors import ProxyError
from aiproxy.openai.types import parse_chat_request
from aiproxy.providers.anthropic.client import map_anthropic_error
from aiproxy.providers.anthropic.request import build_anthropic_request, upstream_tool_id
from aiproxy.providers.anthropic.response import AnthropicTranslator
from aiproxy.providers.anthropic.usage import read_anthropic_usage
from aiproxy.providers.gemini.tools import encode_call_id

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
PDF = base64.b64encode(b"%PDF-1.7\n" + b"x" * 32).decode()
FN = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def build(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "anthropic/claude-sonnet-4-5")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return build_anthropic_request(parse_chat_request(body), "claude-sonnet-4-5")


HI = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]

REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("plain, default max_tokens", {}, {"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": HI,
                                       "stream": True}),
    ("system and developer -> system", {"messages": [{"role": "system", "content": "a"},
                                                     {"role": "developer", "content": "b"},
                                                     {"role": "user", "content": "hi"}]},
     {"system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
    ("client limit, stop, temperature capped", {"max_completion_tokens": 50, "stop": "END", "temperature": 1.7,
                                                "top_p": 0.5},
     {"max_tokens": 50, "stop_sequences": ["END"], "temperature": 1.0, "top_p": 0.5}),
    ("effort -> thinking, budget on top, no temperature", {"reasoning_effort": "medium", "max_tokens": 100,
                                                           "temperature": 0.2},
     {"thinking": {"type": "enabled", "budget_tokens": 8192}, "max_tokens": 8292}),
    ("tools auto", {"tools": [FN], "tool_choice": "auto"},
     {"tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}], "tool_choice": {"type": "auto"}}),
    ("tool_choice required -> any", {"tools": [FN], "tool_choice": "required"}, {"tool_choice": {"type": "any"}}),
    ("tool_choice none", {"tools": [FN], "tool_choice": "none"}, {"tool_choice": {"type": "none"}}),
    ("named + parallel off", {"tools": [FN], "tool_choice": {"type": "function", "function": {"name": "f"}},
                              "parallel_tool_calls": False},
     {"tool_choice": {"type": "tool", "name": "f", "disable_parallel_tool_use": True}}),
    ("parallel off alone", {"tools": [FN], "parallel_tool_calls": False},
     {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}}),
    ("image and pdf", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{PNG}"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}"}}]}]},
     {"messages": [{"role": "user", "content": [
         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
         {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}]}]}),
    ("json_schema -> forced tool, thinking off", {"reasoning_effort": "low", "response_format": {
        "type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}}},
     {"tools": [{"name": "out", "input_schema": {"type": "object"}}], "tool_choice": {"type": "tool", "name": "out"}}),
]


@pytest.mark.parametrize(("body", "expected"), [r[1:] for r in REQUESTS], ids=[r[0] for r in REQUESTS])
def test_request_table(body: dict[str, Any], expected: dict[str, Any]) -> None:
    out = build(**body)
    for key, value in expected.items():
        assert out[key] == value, key
    if "thinking" not in expected:
        assert "thinking" not in out
    if "reasoning_effort" in body:
        assert "temperature" not in out


def test_tool_turns_and_signature_back() -> None:
    call_id = encode_call_id("c2lnbmF0dXJl", 0)
    out = build(messages=[
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "reasoning_content": "thought",
         "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                        {"id": "call:2", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "r1"},
        {"role": "tool", "tool_call_id": "call:2", "content": [{"type": "text", "text": "r2"}]},
        {"role": "user", "content": "more"}])
    tid = upstream_tool_id(call_id)
    assert tid.startswith("call_") and "__ts_" not in tid
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "q"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "thought", "signature": "c2lnbmF0dXJl"},
            {"type": "tool_use", "id": tid, "name": "f", "input": {"a": 1}},
            {"type": "tool_use", "id": "call_2", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, "content": "r1"},
                                     {"type": "tool_result", "tool_use_id": "call_2", "content": "r2"},
                                     {"type": "text", "text": "more"}]}]


def test_think_tags_history_gives_the_thinking_text() -> None:
    call_id = encode_call_id("c2ln", 0)
    out = build(messages=[
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "<think>mulling</think>",
         "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "r"}])
    assert out["messages"][1]["content"][0] == {"type": "thinking", "thinking": "mulling", "signature": "c2ln"}
    assert [b["type"] for b in out["messages"][1]["content"]] == ["thinking", "tool_use"]


@pytest.mark.parametrize(("body", "param"), [
    ({"n": 2}, "n"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": PNG}}]}]},
     "messages[0].content[0].type"),
])
def test_request_refusals(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ProxyError) as info:
        build(**body)
    assert info.value.status == 400 and info.value.param == param


def events(*blocks: dict[str, Any], stop: str = "end_turn", usage: dict[str, int] | None = None) -> list[dict]:
    out: list[dict[str, Any]] = [{"type": "message_start", "message": {"usage": {
        "input_tokens": 10, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2, "output_tokens": 1}}}]
    for i, (start, deltas) in enumerate((b["start"], b["deltas"]) for b in blocks):
        out.append({"type": "content_block_start", "index": i, "content_block": start})
        out += [{"type": "content_block_delta", "index": i, "delta": d} for d in deltas]
        out.append({"type": "content_block_stop", "index": i})
    out.append({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": usage or {"output_tokens": 7}})
    out.append({"type": "message_stop"})
    return out


def translate(evs: list[dict[str, Any]], **kw: Any) -> tuple[list[dict[str, Any]], AnthropicTranslator]:
    t = AnthropicTranslator(completion_id="chatcmpl-1", created=1, model="anthropic/x", **kw)
    chunks = [c for e in evs for c in t.feed(e)]
    return chunks + t.finish(), t


TEXT = {"start": {"type": "text", "text": ""}, "deltas": [{"type": "text_delta", "text": "Hel"},
                                                         {"type": "text_delta", "text": "lo"}]}
THINK = {"start": {"type": "thinking", "thinking": ""}, "deltas": [
    {"type": "thinking_delta", "thinking": "hmm"}, {"type": "signature_delta", "signature": "c2ln"}]}


def tool(name: str, *parts: str) -> dict[str, Any]:
    return {"start": {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}},
            "deltas": [{"type": "input_json_delta", "partial_json": p} for p in ("", *parts)]}


def test_text_stream_usage_and_finish() -> None:
    chunks, t = translate(events(TEXT))
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [{"role": "assistant", "content": "Hel"}, {"content": "lo"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 16, "completion_tokens": 7, "total_tokens": 23,
                                   "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
                                   "completion_tokens_details": {"reasoning_tokens": 0}}
    counts = t.usage()
    assert counts is not None and (counts.cached, counts.cache_write) == (4, 2)


@pytest.mark.parametrize(("stop", "finish"), [("end_turn", "stop"), ("stop_sequence", "stop"),
                                              ("max_tokens", "length"), ("refusal", "content_filter")])
def test_stop_reasons(stop: str, finish: str) -> None:
    chunks, _ = translate(events(TEXT, stop=stop))
    assert chunks[-1]["choices"][0]["finish_reason"] == finish


def test_thinking_field_and_tags() -> None:
    chunks, _ = translate(events(THINK, TEXT))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "reasoning_content": "hmm"}
    tagged, _ = translate(events(THINK, TEXT), think_tags=True)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in tagged) == "<think>hmm</think>Hello"


def test_tool_calls_distinct_indices_ids_and_signature() -> None:
    chunks, _ = translate(events(THINK, tool("f", '{"a":', "1}"), tool("g", "{}"), stop="tool_use"),
                          include_usage=True)
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", ())]
    starts = [tc for tc in calls if "id" in tc]
    assert [s["index"] for s in starts] == [0, 1] and starts[0]["id"] != starts[1]["id"]
    assert "__ts_" in starts[0]["id"] and "__ts_" not in starts[1]["id"]  # the turn's signature, once
    assert "".join(tc["function"]["arguments"] for tc in calls if tc["index"] == 0) == '{"a":1}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 7


def test_single_tool_call_when_parallel_off() -> None:
    chunks, _ = translate(events(tool("f", "{}"), tool("g", "{}"), stop="tool_use"), max_tool_calls=1)
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", ())]
    assert {tc["index"] for tc in calls} == {0}


def test_json_schema_tool_becomes_content() -> None:
    chunks, _ = translate(events(tool("out", '{"x":', "2}"), stop="tool_use"), json_tool="out")
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == '{"x":2}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_usage_clamped() -> None:
    counts = read_anthropic_usage({"input_tokens": -5, "output_tokens": "x", "cache_read_input_tokens": 3})
    assert (counts.prompt, counts.completion, counts.cached) == (3, 0, 3)
    assert set(counts.problems) == {"input_tokens", "output_tokens"}


@pytest.mark.parametrize(("status", "out_status", "code"), [
    (529, 503, "upstream_unavailable"), (429, 429, "rate_limit_exceeded"), (500, 502, "upstream_error"),
    (401, 502, "upstream_auth_error"), (400, 400, "invalid_request_error"), (404, 404, "model_not_found"),
])
def test_error_mapping(status: int, out_status: int, code: str) -> None:
    body = {"type": "error", "error": {"type": "x" if status != 400 else "invalid_request_error",
                                       "message": "bad sk-secret"}}
    err = map_anthropic_error(status, body, {"Retry-After": "12"}, secret="sk-secret")
    assert (err.status, err.code) == (out_status, code) and "sk-secret" not in err.message
    if status == 429:
        assert err.headers == {"Retry-After": "12"}
