"""Golden tests: Gemini stream chunks -> OpenAI chat.completion.chunk dicts, and their fold."""

from __future__ import annotations

from typing import Any

import pytest

from aiproxy.openai.fold import ChunkFolder
from aiproxy.providers.gemini.response import StreamTranslator

CID = "chatcmpl-0123456789abcdef01234567"
HEAD = {"id": CID, "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o",
        "system_fingerprint": None}
USAGE_META = {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
         "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": 0}}


def translate(chunks: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
    t = StreamTranslator(completion_id=CID, created=1700000000, model="gpt-4o", **kw)
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        out.extend(t.feed(chunk))
    out.extend(t.finish())
    return out


def cand(*parts: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    c: dict[str, Any] = {"index": index}
    if parts:
        c["content"] = {"role": "model", "parts": list(parts)}
    if finish:
        c["finishReason"] = finish
    return c


def gchunk(*cands: dict[str, Any], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {"candidates": list(cands), "modelVersion": "gemini-2.5-pro", "responseId": "r1"}
    if usage:
        chunk["usageMetadata"] = usage
    return chunk


def choice(delta: dict[str, Any], finish: str | None = None, index: int = 0,
           native: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    if native:
        c["native_finish_reason"] = native
    return c


def fold(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    folder = ChunkFolder()
    for c in chunks:
        folder.add(c)
    return folder.result()


TEXT_STREAM = [gchunk(cand({"text": "Hel"})), gchunk(cand({"text": "lo"}, finish="STOP"), usage=USAGE_META)]


def test_text_stream_golden() -> None:
    assert translate(TEXT_STREAM) == [
        {**HEAD, "choices": [choice({"role": "assistant", "content": "Hel"})]},
        {**HEAD, "choices": [choice({"content": "lo"})]},
        {**HEAD, "choices": [choice({}, "stop", native="STOP")], "usage": USAGE},
    ]


def test_include_usage_adds_null_usage_everywhere_and_a_last_chunk_without_choices() -> None:
    assert translate(TEXT_STREAM, include_usage=True) == [
        {**HEAD, "usage": None, "choices": [choice({"role": "assistant", "content": "Hel"})]},
        {**HEAD, "usage": None, "choices": [choice({"content": "lo"})]},
        {**HEAD, "usage": None, "choices": [choice({}, "stop", native="STOP")]},
        {**HEAD, "usage": USAGE, "choices": []},
    ]


def test_usage_is_taken_from_the_last_usage_metadata() -> None:
    early = {"promptTokenCount": 3, "totalTokenCount": 3}
    out = translate([gchunk(cand({"text": "a"}), usage=early),
                     gchunk(cand({"text": "b"}, finish="STOP"), usage=USAGE_META)])
    assert out[-1]["usage"] == USAGE


def test_no_usage_metadata_means_no_usage_key() -> None:
    out = translate([gchunk(cand({"text": "a"}, finish="STOP"))])
    assert all("usage" not in c for c in out)


@pytest.mark.parametrize(("native", "expected"), [
    ("STOP", "stop"),
    ("MAX_TOKENS", "length"),
    ("SAFETY", "content_filter"),
    ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"),
    ("PROHIBITED_CONTENT", "content_filter"),
    ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"),
    ("LANGUAGE", "content_filter"),
    ("OTHER", "content_filter"),
    ("MALFORMED_FUNCTION_CALL", "stop"),
    ("FINISH_REASON_UNSPECIFIED", "stop"),
])
def test_every_finish_reason(native: str, expected: str) -> None:
    out = translate([gchunk(cand({"text": "partial"})), gchunk(cand(finish=native), usage=USAGE_META)])
    last = out[-1]["choices"][0]
    assert last["finish_reason"] == expected
    assert last["native_finish_reason"] == native
    assert fold(out)["choices"][0]["message"]["content"] == "partial"


def test_text_before_a_safety_stop_is_kept() -> None:
    out = translate([gchunk(cand({"text": "Once upon"})), gchunk(cand({"text": " a time"}, finish="SAFETY"))])
    assert [c["choices"][0]["delta"].get("content") for c in out] == ["Once upon", " a time", None]
    body = fold(out)
    assert body["choices"][0]["message"]["content"] == "Once upon a time"
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["native_finish_reason"] == "SAFETY"


def test_blocked_prompt_answers_as_content_filter_with_the_native_reason() -> None:
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
               "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}
    out = translate([blocked])
    assert out == [{**HEAD, "choices": [choice({"role": "assistant"}, "content_filter", native="PROHIBITED_CONTENT")],
                    "usage": {**USAGE, "prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7}}]
    body = fold(out)
    assert body["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "content_filter",
                                "native_finish_reason": "PROHIBITED_CONTENT",
                                "message": {"role": "assistant", "content": "", "refusal": None}}]


CALL_A = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
CALL_B = {"functionCall": {"name": "get_time", "args": {}}}


def test_function_calls_get_distinct_index_and_id_and_finish_as_tool_calls() -> None:
    # Gemini often sends STOP in a later chunk that carries only an empty text part.
    out = translate([gchunk(cand(CALL_A, CALL_B)), gchunk(cand({"text": ""}, finish="STOP"), usage=USAGE_META)])
    calls = out[0]["choices"][0]["delta"]["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1]
    assert len({c["id"] for c in calls}) == 2
    assert [(c["type"], c["function"]) for c in calls] == [
        ("function", {"name": "get_weather", "arguments": '{"city":"Paris"}'}),
        ("function", {"name": "get_time", "arguments": "{}"}),
    ]
    assert out[0]["choices"][0]["delta"]["role"] == "assistant"
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"
    message = fold(out)["choices"][0]["message"]
    assert message["content"] is None
    assert [c["id"] for c in message["tool_calls"]] == [c["id"] for c in calls]
    assert message["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'


def test_function_calls_in_separate_chunks_keep_counting() -> None:
    out = translate([gchunk(cand(CALL_A)), gchunk(cand(CALL_B, finish="STOP"))])
    firsts = [c["choices"][0]["delta"]["tool_calls"][0] for c in out[:2]]
    assert [c["index"] for c in firsts] == [0, 1]
    assert firsts[0]["id"] != firsts[1]["id"]
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_function_call_cut_by_max_tokens_stays_length() -> None:
    out = translate([gchunk(cand(CALL_A, finish="MAX_TOKENS"))])
    assert out[-1]["choices"][0]["finish_reason"] == "length"


def test_custom_tool_call_id_function_is_used() -> None:
    out = translate([gchunk(cand(CALL_A, finish="STOP"))],
                    tool_call_id=lambda part, fc, seq, cid: f"x{seq}-{fc['name']}")
    assert out[0]["choices"][0]["delta"]["tool_calls"][0]["id"] == "x0-get_weather"


THOUGHTS = [
    gchunk(cand({"text": "Let me think.", "thought": True})),
    gchunk(cand({"text": " More.", "thought": True}, {"text": "Answer"})),
    gchunk(cand({"text": "!"}, finish="STOP"),
           usage={"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 4, "totalTokenCount": 9}),
]


def test_thoughts_as_reasoning_content() -> None:
    out = translate(THOUGHTS)
    assert [c["choices"][0]["delta"] for c in out] == [
        {"role": "assistant", "reasoning_content": "Let me think."},
        {"reasoning_content": " More.", "content": "Answer"},
        {"content": "!"},
        {},
    ]
    assert out[-1]["usage"]["completion_tokens"] == 6
    assert out[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}
    message = fold(out)["choices"][0]["message"]
    assert message["content"] == "Answer!"
    assert message["reasoning_content"] == "Let me think. More."


def test_thoughts_as_think_tags() -> None:
    out = translate(THOUGHTS, think_tags=True)
    assert [c["choices"][0]["delta"].get("content") for c in out] == [
        "<think>Let me think.", " More.</think>Answer", "!", None]
    assert fold(out)["choices"][0]["message"]["content"] == "<think>Let me think. More.</think>Answer!"
    assert "reasoning_content" not in fold(out)["choices"][0]["message"]


def test_think_tag_is_closed_when_the_stream_ends_thinking() -> None:
    out = translate([gchunk(cand({"text": "hmm", "thought": True}, finish="MAX_TOKENS"))], think_tags=True)
    assert [c["choices"][0]["delta"].get("content") for c in out] == ["<think>hmm", "</think>"]
    assert out[-1]["choices"][0]["finish_reason"] == "length"


def test_n_candidates_each_get_role_finish_and_usage_on_the_last() -> None:
    out = translate([
        gchunk(cand({"text": "A"}, index=0), cand({"text": "B"}, index=1)),
        gchunk(cand({"text": "a"}, finish="STOP", index=0), cand({"text": "b"}, finish="MAX_TOKENS", index=1),
               usage=USAGE_META),
    ])
    assert [(c["choices"][0]["index"], c["choices"][0]["delta"]) for c in out[:4]] == [
        (0, {"role": "assistant", "content": "A"}), (1, {"role": "assistant", "content": "B"}),
        (0, {"content": "a"}), (1, {"content": "b"}),
    ]
    finishes = [(c["choices"][0]["index"], c["choices"][0]["finish_reason"]) for c in out[4:]]
    assert finishes == [(0, "stop"), (1, "length")]
    assert "usage" not in out[4] and out[5]["usage"] == USAGE
    body = fold(out)
    folded = [(c["message"]["content"], c["finish_reason"]) for c in body["choices"]]
    assert folded == [("Aa", "stop"), ("Bb", "length")]


def test_fold_golden_text() -> None:
    assert fold(translate(TEXT_STREAM)) == {
        "id": CID, "object": "chat.completion", "created": 1700000000, "model": "gpt-4o", "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello", "refusal": None},
                     "logprobs": None, "finish_reason": "stop", "native_finish_reason": "STOP"}],
        "usage": USAGE,
    }


def test_fold_with_include_usage_keeps_usage() -> None:
    assert fold(translate(TEXT_STREAM, include_usage=True))["usage"] == USAGE


@pytest.mark.parametrize("stream", [TEXT_STREAM, THOUGHTS], ids=["text", "thoughts"])
def test_fold_holds_exactly_the_streamed_content(stream: list[dict[str, Any]]) -> None:
    out = translate(stream, think_tags=True)
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in out if c["choices"])
    assert fold(out)["choices"][0]["message"]["content"] == streamed


def test_translator_bookkeeping() -> None:
    t = StreamTranslator(completion_id=CID, created=1, model="m")
    assert t.feed({"candidates": [], "modelVersion": "gemini-x", "responseId": "abc"}) == []
    assert t.output_chars == 0 and t.usage_metadata is None
    t.feed(gchunk(cand({"text": "12345"}), usage=USAGE_META))
    assert t.output_chars == 5
    assert t.usage_metadata == USAGE_META
