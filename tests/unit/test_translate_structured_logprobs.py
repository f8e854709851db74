"""Golden tables for response_format and logprobs, each named after the bug it prevents."""

from __future__ import annotations

from typing import Any

import pytest

from aiproxy.errors import ProxyError
from aiproxy.openai.fold import ChunkFolder
from aiproxy.openai.types import parse_chat_request
from aiproxy.providers.gemini.logprobs import openai_logprobs
from aiproxy.providers.gemini.request import build_gemini_request
from aiproxy.providers.gemini.response import StreamTranslator

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"name": {"type": "string"}, "$schema": {"type": "string"},
                   "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}}},
    "required": ["name", "tags"],
    "additionalProperties": False,
    "$defs": {"Tag": {"type": "object", "properties": {"v": {"type": ["string", "null"]}},
                      "additionalProperties": False, "$schema": "x"}},
}


def gen_config(**fields: Any) -> dict[str, Any]:
    req = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})
    return build_gemini_request(req, "gemini-2.5-flash").get("generationConfig", {})


def error_of(**fields: Any) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        gen_config(**fields)
    return info.value


def test_json_object_asks_gemini_for_json() -> None:
    assert gen_config(response_format={"type": "json_object"}) == {"responseMimeType": "application/json"}


def test_text_format_adds_nothing() -> None:
    assert gen_config(response_format={"type": "text"}) == {}


def test_json_schema_is_sent_as_response_json_schema_without_meta_schema_key() -> None:
    cfg = gen_config(temperature=0.1, response_format={
        "type": "json_schema", "json_schema": {"name": "Person", "schema": SCHEMA, "strict": True}})
    expected = {k: v for k, v in SCHEMA.items() if k != "$schema"}
    expected["$defs"] = {"Tag": {"type": "object", "properties": {"v": {"type": ["string", "null"]}},
                                 "additionalProperties": False}}
    assert cfg == {"temperature": 0.1, "responseMimeType": "application/json", "responseJsonSchema": expected}


def test_property_named_dollar_schema_is_not_dropped() -> None:
    cfg = gen_config(response_format={"type": "json_schema", "json_schema": {"name": "P", "schema": SCHEMA}})
    assert "$schema" in cfg["responseJsonSchema"]["properties"]


def test_additional_properties_false_is_kept_for_strict_schemas() -> None:
    cfg = gen_config(response_format={"type": "json_schema", "json_schema": {"name": "P", "schema": SCHEMA}})
    assert cfg["responseJsonSchema"]["additionalProperties"] is False


@pytest.mark.parametrize("fmt, param", [
    ({"type": "yaml"}, "response_format.type"),
    ({}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"schema": {}}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": "object"}}, "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": "yes"}},
     "response_format.json_schema.strict"),
])
def test_malformed_response_format_is_a_400_naming_it(fmt: dict[str, Any], param: str) -> None:
    err = error_of(response_format=fmt)
    assert (err.status, err.param) == (400, param)


def test_logprobs_request_maps_to_response_logprobs_and_k() -> None:
    assert gen_config(logprobs=True, top_logprobs=3) == {"responseLogprobs": True, "logprobs": 3}
    assert gen_config(logprobs=True) == {"responseLogprobs": True}
    assert gen_config(logprobs=False) == {}


def test_top_logprobs_without_logprobs_is_a_400() -> None:
    assert error_of(top_logprobs=2).param == "top_logprobs"


GEMINI_LOGPROBS = {
    "chosenCandidates": [{"token": "Hé", "logProbability": -0.1}, {"token": " yo", "logProbability": -1.5}],
    "topCandidates": [
        {"candidates": [{"token": "Hé", "logProbability": -0.1}, {"token": "Hi", "logProbability": -2.0}]},
        {"candidates": [{"token": " yo", "logProbability": -1.5}]},
    ],
}
OPENAI_LOGPROBS = {"content": [
    {"token": "Hé", "logprob": -0.1, "bytes": [72, 195, 169],
     "top_logprobs": [{"token": "Hé", "logprob": -0.1, "bytes": [72, 195, 169]},
                      {"token": "Hi", "logprob": -2.0, "bytes": [72, 105]}]},
    {"token": " yo", "logprob": -1.5, "bytes": [32, 121, 111],
     "top_logprobs": [{"token": " yo", "logprob": -1.5, "bytes": [32, 121, 111]}]},
], "refusal": None}


def test_gemini_logprobs_result_maps_to_openai_shape_with_utf8_bytes() -> None:
    assert openai_logprobs(GEMINI_LOGPROBS) == OPENAI_LOGPROBS


def test_logprobs_without_top_candidates_give_empty_top_lists() -> None:
    out = openai_logprobs({"chosenCandidates": [{"token": "a", "logProbability": -1.0}]})
    assert out["content"] == [{"token": "a", "logprob": -1.0, "bytes": [97], "top_logprobs": []}]


def translator() -> StreamTranslator:
    return StreamTranslator(completion_id="chatcmpl-abc", created=1, model="m")


def test_logprobs_ride_on_the_delta_that_carries_the_text() -> None:
    t = translator()
    out = t.feed({"candidates": [{"index": 0, "content": {"parts": [{"text": "Hé yo"}]},
                                  "logprobsResult": GEMINI_LOGPROBS}]})
    assert len(out) == 1
    assert out[0]["choices"][0]["delta"]["content"] == "Hé yo"
    assert out[0]["choices"][0]["logprobs"] == OPENAI_LOGPROBS


def test_logprobs_in_a_chunk_without_text_are_not_lost() -> None:
    t = translator()
    first = t.feed({"candidates": [{"index": 0, "content": {"parts": [{"text": "Hé yo"}]}}]})
    last = t.feed({"candidates": [{"index": 0, "finishReason": "STOP", "logprobsResult": GEMINI_LOGPROBS}]})
    assert first[0]["choices"][0]["logprobs"] is None
    assert last[0]["choices"][0]["delta"] == {} and last[0]["choices"][0]["logprobs"] == OPENAI_LOGPROBS


def test_folded_message_concatenates_logprobs_of_all_deltas() -> None:
    t, folder = translator(), ChunkFolder()
    half = {"chosenCandidates": GEMINI_LOGPROBS["chosenCandidates"][:1],
            "topCandidates": GEMINI_LOGPROBS["topCandidates"][:1]}
    rest = {"chosenCandidates": GEMINI_LOGPROBS["chosenCandidates"][1:],
            "topCandidates": GEMINI_LOGPROBS["topCandidates"][1:]}
    for chunk in ({"candidates": [{"index": 0, "content": {"parts": [{"text": "Hé"}]}, "logprobsResult": half}]},
                  {"candidates": [{"index": 0, "content": {"parts": [{"text": " yo"}]}, "logprobsResult": rest,
                                   "finishReason": "STOP"}]}):
        for c in t.feed(chunk):
            folder.add(c)
    for c in t.finish():
        folder.add(c)
    choice = folder.result()["choices"][0]
    assert choice["message"]["content"] == "Hé yo"
    assert choice["logprobs"] == OPENAI_LOGPROBS


def test_folded_message_without_logprobs_keeps_null() -> None:
    t, folder = translator(), ChunkFolder()
    for c in t.feed({"candidates": [{"index": 0, "content": {"parts": [{"text": "x"}]},
                                     "finishReason": "STOP"}]}) + t.finish():
        folder.add(c)
    assert folder.result()["choices"][0]["logprobs"] is None


def test_model_without_response_json_schema_gets_sanitized_response_schema() -> None:
    req = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "P", "schema": SCHEMA}}})
    cfg = build_gemini_request(req, "gemini-2.0-flash")["generationConfig"]
    assert "responseJsonSchema" not in cfg and cfg["responseMimeType"] == "application/json"
    tags = cfg["responseSchema"]["properties"]["tags"]
    assert "additionalProperties" not in cfg["responseSchema"] and "$ref" not in tags["items"]
    assert tags["items"]["properties"]["v"] == {"type": "string", "nullable": True}
