"""The chat, embeddings and models handlers work with any `Provider`, not just Gemini.

A scripted provider (no HTTP at all) is put behind the registry of a real app: what it yields is
exactly what the client reads (SSE and folded JSON), its usage counts are what is billed, and its
models are listed under its owner. This is what a new provider package gets for free.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from aiproxy.app import create_app
from aiproxy.appkeys import PROVIDERS_KEY
from aiproxy.openai.sse import DONE
from aiproxy.openai.types import ChatRequest
from aiproxy.providers.base import ChatOptions, UpstreamEvents, UsageCounts
from aiproxy.providers.registry import Providers
from tests.conftest import make_settings

USAGE = UsageCounts(prompt=11, completion=7, total=18, reasoning=2, cached=0, audio=0, cached_audio=0)


def chunk(options: ChatOptions, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": options.completion_id, "object": "chat.completion.chunk", "created": 1, "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


class ScriptedStream:
    def __init__(self, options: ChatOptions, model: str) -> None:
        self.model = "scripted-1"  # what served, as after a fallback
        self._options, self._echo = options, model
        self.closed = self.released = False

    async def __aiter__(self) -> AsyncIterator[list[dict[str, Any]]]:
        yield [chunk(self._options, self._echo, {"role": "assistant", "content": "Hello"})]
        yield [chunk(self._options, self._echo, {"content": ", "}),
               chunk(self._options, self._echo, {"content": "world"})]

    def finish(self) -> list[dict[str, Any]]:
        return [chunk(self._options, self._echo, {}, "stop")]

    @property
    def output_chars(self) -> int:
        return len("Hello, world")

    def usage(self) -> UsageCounts | None:
        return USAGE

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        self.released = True


class ScriptedProvider:
    name = "scripted"
    owned_by = "scripted-inc"

    def __init__(self) -> None:
        self.streams: list[ScriptedStream] = []

    def prepare_chat(self, req: ChatRequest, upstream_model: str, options: ChatOptions) -> Any:
        provider = self

        class Call:
            async def open(self) -> ScriptedStream:
                provider.streams.append(ScriptedStream(options, req.model))
                return provider.streams[-1]

        return Call()

    async def embed(self, model: str, texts: list[str],
                    dims: int | None) -> AsyncIterator[tuple[list[str], list[list[float]]]]:
        yield texts, [[0.25, 0.5] for _ in texts]

    async def count_tokens(self, model: str, texts: list[str]) -> int | None:
        return 5

    async def list_models(self) -> list[str]:
        return ["scripted-1"]

    def configure(self, retry_policy: Any, fallbacks: Any, events: UpstreamEvents) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    @property
    def is_open(self) -> bool:
        return True


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[TestServer, ScriptedProvider]]:
    app = create_app(make_settings("http://127.0.0.1:9"))  # Gemini unreachable: never called
    provider = ScriptedProvider()
    app[PROVIDERS_KEY] = Providers(app[PROVIDERS_KEY].models, [provider])
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, provider
    await server.close()


async def test_streamed_chat_is_the_providers_chunks_then_done(scripted: Any, http: Any, billing_lines: Any) -> None:
    server, provider = scripted
    async with http.post(server.make_url("/v1/chat/completions"), json={
            "model": "gpt-4", "stream": True, "user": "alice",
            "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 200 and resp.headers["X-Upstream-Model"] == "scripted-1"
        raw = await resp.read()
    assert raw.endswith(DONE)
    events = [jsonutil.loads(line[6:]) for line in raw.decode().split("\n\n") if line.startswith("data: {")]
    assert [e["choices"][0]["delta"] for e in events] == [
        {"role": "assistant", "content": "Hello"}, {"content": ", "}, {"content": "world"}, {}]
    assert events[-1]["choices"][0]["finish_reason"] == "stop" and events[0]["model"] == "gpt-4"
    assert events[0]["id"].startswith("chatcmpl-") and len({e["id"] for e in events}) == 1
    assert provider.streams[0].released and not provider.streams[0].closed
    assert "User: alice | Model: gpt-4 | Tokens: 11 input + 7 output = 18 total" in billing_lines()[0]


async def test_buffered_chat_folds_the_providers_chunks(scripted: Any, http: Any, billing_lines: Any) -> None:
    server, _ = scripted
    async with http.post(server.make_url("/v1/chat/completions"), json={
            "model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}) as resp:
        body = await resp.json()
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4"
    assert body["choices"] == [{"index": 0,
                                "message": {"role": "assistant", "content": "Hello, world", "refusal": None},
                                "logprobs": None, "finish_reason": "stop"}]
    assert "Tokens: 11 input + 7 output = 18 total" in billing_lines()[0]


async def test_embeddings_and_models_come_from_the_provider(scripted: Any, http: Any) -> None:
    server, _ = scripted
    async with http.post(server.make_url("/v1/embeddings"),
                         json={"model": "text-embedding-3-small", "input": ["a", "b"]}) as resp:
        body = await resp.json()
    assert [d["embedding"] for d in body["data"]] == [[0.25, 0.5], [0.25, 0.5]]
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    async with http.get(server.make_url("/v1/models")) as resp:
        models = {m["id"]: m["owned_by"] for m in (await resp.json())["data"]}
    assert models["scripted-1"] == "scripted-inc" and models["gpt-4"] == "aiproxy"
