"""Events that arrive in one network read leave in one list (one write to the client), and an
event that fails to parse still lets the events before it through first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiproxy import jsonutil
from aiproxy.providers.anthropic.client import AnthropicStream
from aiproxy.providers.base import UpstreamStreamError
from aiproxy.providers.gemini.client import GeminiStream
from aiproxy.providers.gemini.provider import GeminiChatStream
from aiproxy.providers.gemini.response import StreamTranslator
from aiproxy.providers.upstream import sse_batches


class _Content:
    def __init__(self, reads: list[bytes]) -> None:
        self._reads = reads

    async def iter_any(self) -> AsyncIterator[bytes]:
        for data in self._reads:
            yield data


class _Resp:
    """What sse_batches reads of an aiohttp ClientResponse: `content.iter_any()`."""

    def __init__(self, reads: list[bytes]) -> None:
        self.content = _Content(reads)

    def close(self) -> None: ...

    def release(self) -> None: ...


def _gemini(text: str, finish: str | None = None) -> bytes:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    chunk: dict[str, Any] = {"candidates": [cand]}
    if finish:
        chunk["usageMetadata"] = {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7}
    return b"data: " + jsonutil.dumps(chunk) + b"\r\n\r\n"


async def _lists(resp: _Resp) -> list[list[Any]]:
    stream = GeminiChatStream(GeminiStream(resp, "gemini-2.5-flash"),  # type: ignore[arg-type]
                              StreamTranslator(completion_id="chatcmpl-1", created=1, model="gemini-2.5-flash"))
    return [out async for out in stream]


def _contents(out: list[dict[str, Any]]) -> list[str]:
    return [c["choices"][0]["delta"].get("content", "") for c in out if c.get("choices")]


@pytest.mark.parametrize(("reads", "expected"), [
    # All three events in one read: one list, so the handler writes once.
    ([_gemini("a") + _gemini("b") + _gemini("c", "STOP")], [["a", "b", "c"]]),
    # One event per read (a model generating in real time): each leaves at once.
    ([_gemini("a"), _gemini("b"), _gemini("c", "STOP")], [["a"], ["b"], ["c"]]),
    # A read that ends mid-event: the event completes with the next read.
    ([_gemini("a") + _gemini("b")[:9], _gemini("b")[9:] + _gemini("c", "STOP")], [["a"], ["b", "c"]]),
])
async def test_one_list_per_network_read(reads: list[bytes], expected: list[list[str]]) -> None:
    lists = await _lists(_Resp(reads))
    assert [_contents(out) for out in lists] == expected


async def test_a_bad_event_ends_the_stream_after_the_events_before_it() -> None:
    reads = [_gemini("a") + _gemini("b") + b"data: {not json\r\n\r\n" + _gemini("c", "STOP")]
    got: list[list[str]] = []
    with pytest.raises(UpstreamStreamError, match="malformed"):
        async for out in GeminiStream(_Resp(reads), "m").batches():  # type: ignore[arg-type]
            got.append([e["candidates"][0]["content"]["parts"][0]["text"] for e in out])
    assert got == [["a", "b"]]


async def test_truncated_stream_is_still_an_error() -> None:
    with pytest.raises(UpstreamStreamError, match="ended before the answer was complete"):
        await _lists(_Resp([_gemini("a") + _gemini("b")]))


async def test_anthropic_events_of_one_read_are_one_batch() -> None:
    events = [{"type": "ping"}, {"type": "message_stop"}]
    body = b"".join(b"event: x\ndata: " + jsonutil.dumps(e) + b"\n\n" for e in events)
    batches = [b async for b in sse_batches(_Resp([body]), AnthropicStream.parse_event, "Anthropic")]  # type: ignore[arg-type]
    assert batches == [events]


async def test_openai_chunks_of_one_read_are_one_list_and_a_bad_chunk_comes_after_them() -> None:
    from aiproxy.providers.openai.stream import OpenAIChatStream

    def chunk(text: str) -> bytes:
        return b"data: " + jsonutil.dumps({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4.1",
                                           "choices": [{"index": 0, "delta": {"content": text}}]}) + b"\n\n"

    stream = OpenAIChatStream(_Resp([chunk("a") + chunk("b") + b'data: {"id": "c"}\n\n']),  # type: ignore[arg-type]
                              "gpt-4.1", "my-model", False, "OpenAI")
    got: list[list[str]] = []
    with pytest.raises(UpstreamStreamError, match="without choices"):
        async for out in stream:
            got.append(_contents(out))
    assert got == [["a", "b"]]
    assert stream.output_chars == 2


async def test_a_translator_fault_lets_the_chunks_translated_before_it_out_first() -> None:
    class FailingThird(StreamTranslator):
        __slots__ = ("calls",)

        def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 3:
                raise RuntimeError("translator bug")
            return super().feed(chunk)

    translator = FailingThird(completion_id="chatcmpl-1", created=1, model="gemini-2.5-flash")
    reads = [_gemini("a") + _gemini("b") + _gemini("c", "STOP")]  # one network read
    stream = GeminiChatStream(GeminiStream(_Resp(reads), "gemini-2.5-flash"), translator)  # type: ignore[arg-type]
    got: list[list[str]] = []
    with pytest.raises(RuntimeError, match="translator bug"):
        async for out in stream:
            got.append(_contents(out))
    assert got == [["a", "b"]]
