"""The OpenAI emulator (`/openai/v1/...`) validated by the official `openai` SDK: its types parse
every body and chunk, its error classes see the statuses and codes OpenAI sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from aiproxy.emulator import EmulatorConfig, create_emulator_app, directive_text
from aiproxy.emulator.tokens import count_tokens

KEY = "sk-emulator-test-key"


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    srv = TestServer(create_emulator_app(EmulatorConfig(api_key=KEY)), host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


def base_url(server: TestServer) -> str:
    return str(server.make_url("/openai/v1"))


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[AsyncOpenAI]:
    c = AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    yield c
    await c.close()


def ask(text: str, **directive: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"{text} {directive_text(**directive)}" if directive else text}]


async def collect_tool_calls(stream: Any) -> tuple[dict[int, dict[str, str]], str | None]:
    """Streamed tool calls rebuilt as a client does (by index, id and name once, arguments
    concatenated), and the last finish_reason."""
    built: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or ():
            entry = built.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += tc.id or ""
            entry["name"] += (tc.function.name or "") if tc.function else ""
            entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
        finish = chunk.choices[0].finish_reason or finish
    return built, finish


async def test_buffered_completion_with_usage_details(client: AsyncOpenAI) -> None:
    messages = ask("Hi", reply="Hello there.", reasoning_tokens=7, cached_tokens=2)
    resp = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-")
    assert resp.model == "gpt-4o-mini-2025-04-14"
    choice = resp.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == "Hello there."
    assert choice.finish_reason == "stop"
    prompt = count_tokens(messages[0]["content"])
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (prompt, count_tokens("Hello there.") + 7)
    assert resp.usage.total_tokens == prompt + count_tokens("Hello there.") + 7
    assert resp.usage.prompt_tokens_details.cached_tokens == 2
    assert resp.usage.completion_tokens_details.reasoning_tokens == 7


async def test_stream_with_include_usage(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4.1", messages=ask("Hi", reply="one two three four", chunks=2), stream=True,
        stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and not any(finishes[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == count_tokens(
        "one two three four")
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_include_usage_has_no_usage_chunk(server: TestServer) -> None:
    body = {"model": "gpt-4o", "messages": ask("Hi", reply="abc"), "stream": True}
    async with aiohttp.ClientSession() as http, http.post(
            base_url(server) + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}) as resp:
        raw = (await resp.read()).decode()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all("usage" not in c and c["choices"] for c in chunks)
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}


async def test_streamed_tool_calls_have_ids_and_indices(client: AsyncOpenAI) -> None:
    calls = [{"name": "get_weather", "args": {"city": "Paris"}}, {"name": "get_time", "args": {"tz": "CET"}}]
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=ask("Weather?", function_calls=calls), stream=True,
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
    built, finish = await collect_tool_calls(stream)
    assert finish == "tool_calls"
    assert [json.loads(built[i]["arguments"]) for i in (0, 1)] == [{"city": "Paris"}, {"tz": "CET"}]
    assert [built[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert all(built[i]["id"].startswith("call_") for i in (0, 1)) and built[0]["id"] != built[1]["id"]


async def test_tool_result_must_answer_a_call(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_x", "content": "42"}])
    assert "must be a response to a preceeding message with 'tool_calls'" in caught.value.message


async def test_bad_and_missing_keys(server: TestServer) -> None:
    async with AsyncOpenAI(base_url=base_url(server), api_key="sk-wrong-key-1234", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.models.list()
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    assert "sk-wrong-key-1234" not in caught.value.message
    async with aiohttp.ClientSession() as http, http.get(base_url(server) + "/models") as resp:
        body = await resp.json()
    assert resp.status == 401 and body["error"]["type"] == "invalid_request_error"
    assert set(body["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(("status", "error_class", "code"), [
    (400, openai.BadRequestError, None),
    (404, openai.NotFoundError, "model_not_found"),
    (429, openai.RateLimitError, "rate_limit_exceeded"),
    (500, openai.InternalServerError, None),
    (503, openai.InternalServerError, None),
])
async def test_scripted_errors(client: AsyncOpenAI, status: int, error_class: type[openai.APIStatusError],
                               code: str | None) -> None:
    with pytest.raises(error_class) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=ask("x", error=status, retry_after=3))
    assert caught.value.status_code == status and caught.value.code == code
    assert caught.value.response.headers["retry-after"] == "3"


async def test_error_times_then_success(client: AsyncOpenAI) -> None:
    messages = ask("x", error=429, error_times=1, key="once", reply="ok")
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o", messages=messages)
    resp = await client.chat.completions.create(model="gpt-4o", messages=messages)
    assert resp.choices[0].message.content == "ok"


async def test_unknown_model_and_stream_options_without_stream(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gpt-nope", messages=ask("x"))
    assert caught.value.code == "model_not_found" and "`gpt-nope`" in caught.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        await client.chat.completions.create(model="gpt-4o", messages=ask("x"), stream_options={"include_usage": True})
    assert bad.value.param == "stream_options"


async def test_embeddings_base64_and_float(client: AsyncOpenAI) -> None:
    b64 = await client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=8)
    flt = await client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=8,
                                         encoding_format="float")
    assert [len(d.embedding) for d in b64.data] == [8, 8]
    assert [round(v, 5) for v in b64.data[0].embedding] == [round(v, 5) for v in flt.data[0].embedding]
    assert b64.data[0].embedding != b64.data[1].embedding
    assert b64.usage.prompt_tokens == b64.usage.total_tokens == count_tokens("alpha") + count_tokens("beta")


async def test_models_list(client: AsyncOpenAI) -> None:
    ids = [m.id async for m in client.models.list()]
    assert {"gpt-4o", "text-embedding-3-small", "llama3.2"} <= set(ids)
