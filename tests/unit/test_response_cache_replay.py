"""A cached `chat.completion` replayed as chunks (aiproxy/cache/replay.py): folding the replay gives
back the stored answer, and the usage arrives where a live stream puts it."""

from __future__ import annotations

from typing import Any

import pytest

from aiproxy.cache.replay import ReplayStream
from aiproxy.openai.fold import ChunkFolder

USAGE = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42,
         "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 9}}
TEXT = {"index": 0, "message": {"role": "assistant", "content": "Hello.", "refusal": None,
                                "reasoning_content": "Greet."},
        "logprobs": {"content": [{"token": "Hello.", "logprob": -0.1, "bytes": None, "top_logprobs": []}],
                     "refusal": None},
        "finish_reason": "stop", "native_finish_reason": "STOP"}
CALLS = {"index": 0, "message": {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
    {"id": "call_2", "type": "function", "function": {"name": "b", "arguments": "{\"x\": 1}"}}]},
         "logprobs": None, "finish_reason": "tool_calls"}


def cached(*choices: dict[str, Any]) -> dict[str, Any]:
    return {"id": "chatcmpl-old", "object": "chat.completion", "created": 1, "model": "m", "system_fingerprint": None,
            "choices": list(choices), "usage": USAGE}


async def replay(body: dict[str, Any], include_usage: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    stream = ReplayStream(body, completion_id="chatcmpl-new", client_model="gpt-4o-mini", upstream_model="up",
                          include_usage=include_usage)
    chunks = [chunk async for out in stream for chunk in out]
    return chunks, stream.finish()


@pytest.mark.parametrize("choices", [[TEXT], [CALLS], [TEXT, {**CALLS, "index": 1}]])
async def test_folding_the_replay_gives_back_the_stored_answer(choices: list[dict[str, Any]]) -> None:
    body = cached(*choices)
    chunks, final = await replay(body, include_usage=False)
    folder = ChunkFolder()
    for chunk in chunks + final:
        folder.add(chunk)
    folded = folder.result()
    assert folded["choices"] == body["choices"] and folded["usage"] == USAGE
    assert (folded["id"], folded["model"]) == ("chatcmpl-new", "gpt-4o-mini")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


@pytest.mark.parametrize("include_usage", [False, True])
async def test_usage_where_a_live_stream_puts_it(include_usage: bool) -> None:
    stream = ReplayStream(cached(TEXT), completion_id="c", client_model="m", upstream_model="up",
                          include_usage=include_usage)
    [_ async for _ in stream]
    final = stream.finish()
    if include_usage:  # a usage-only chunk after the finish chunk
        assert [c["choices"] for c in final][-1] == [] and final[-1]["usage"] == USAGE
    else:  # on the last finish chunk
        assert len(final) == 1 and final[0]["usage"] == USAGE and final[0]["choices"][0]["finish_reason"] == "stop"
    counts = stream.usage()
    assert counts is not None
    assert (counts.prompt, counts.completion, counts.total, counts.reasoning, counts.cached) == (12, 30, 42, 9, 4)
    assert stream.model == "up" and stream.output_chars == len("Hello.")
