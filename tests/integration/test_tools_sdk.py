"""Tools, thought signatures, reasoning and n, end to end with the official `openai` SDK.

The proxy runs against the emulator over loopback; what Gemini was sent is read back from the
emulator's request log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI, BadRequestError

from aiproxy.emulator import directive_text
from aiproxy.providers.gemini.tools import decode_call_signature
from tests.conftest import generation_requests

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": False},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
TWO_CALLS = [{"name": "get_weather", "args": {"city": "Paris"}}, {"name": "get_time", "args": {}}]
SIG = "c2lnbmF0dXJlLW9uZS10d28tdGhyZWU="


@pytest.fixture
async def client(proxy_url: str) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=f"{proxy_url}/v1", api_key="k", max_retries=0) as c:
        yield c


async def upstream_bodies(http: aiohttp.ClientSession, emulator: TestServer) -> list[dict[str, Any]]:
    return [r["body"] for r in await generation_requests(http, emulator)]


async def collect_stream(stream: Any) -> tuple[dict[int, dict[str, Any]], list[str | None]]:
    """Merge streamed tool calls the way Lotti does: by id, then by index."""
    calls: dict[int, dict[str, Any]] = {}
    finishes: list[str | None] = []
    async for chunk in stream:
        for choice in chunk.choices:
            finishes.append(choice.finish_reason)
            for tc in choice.delta.tool_calls or ():
                entry = calls.setdefault(tc.index, {"id": tc.id, "name": "", "arguments": ""})
                assert entry["id"] == tc.id or tc.id is None
                entry["name"] += tc.function.name or ""
                entry["arguments"] += tc.function.arguments or ""
    return calls, finishes


async def test_automatic_parallel_calls_buffered(client: AsyncOpenAI, http: aiohttp.ClientSession,
                                                 emulator: TestServer) -> None:
    reply = await client.chat.completions.create(
        model="gemini-2.5-flash", tools=[WEATHER, TIME], tool_choice="auto",
        messages=[{"role": "user", "content": "Paris weather and time? " + directive_text(function_calls=TWO_CALLS)}])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [c.function.arguments for c in calls] == ['{"city":"Paris"}', "{}"]
    assert len({c.id for c in calls}) == 2
    body = (await upstream_bodies(http, emulator))[-1]
    decl = body["tools"][0]["functionDeclarations"][0]
    assert decl["parametersJsonSchema"]["additionalProperties"] is False
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.parametrize("calls_then_stop", [False, True], ids=["stop-on-calls", "stop-in-later-empty-chunk"])
async def test_automatic_parallel_calls_streamed_each_with_own_index(client: AsyncOpenAI,
                                                                     calls_then_stop: bool) -> None:
    stream = await client.chat.completions.create(
        model="gemini-2.5-flash", tools=[WEATHER, TIME], stream=True,
        messages=[{"role": "user",
                   "content": directive_text(function_calls=TWO_CALLS, calls_then_stop=calls_then_stop)}])
    calls, finishes = await collect_stream(stream)
    assert sorted(calls) == [0, 1]
    assert calls[0]["name"] == "get_weather" and calls[0]["arguments"] == '{"city":"Paris"}'
    assert calls[1]["name"] == "get_time" and calls[1]["arguments"] == "{}"
    assert calls[0]["id"] != calls[1]["id"]
    assert [f for f in finishes if f] == ["tool_calls"]


async def test_forced_tool_call(client: AsyncOpenAI, http: aiohttp.ClientSession, emulator: TestServer) -> None:
    for stream in (False, True):
        kwargs: dict[str, Any] = dict(model="gemini-2.5-flash", tools=[WEATHER, TIME], stream=stream,
                                      tool_choice={"type": "function", "function": {"name": "get_time"}},
                                      messages=[{"role": "user", "content": "What time is it?"}])
        if stream:
            calls, finishes = await collect_stream(await client.chat.completions.create(**kwargs))
            assert [c["name"] for c in calls.values()] == ["get_time"]
            assert [f for f in finishes if f] == ["tool_calls"]
        else:
            reply = await client.chat.completions.create(**kwargs)
            assert [c.function.name for c in reply.choices[0].message.tool_calls] == ["get_time"]
        body = (await upstream_bodies(http, emulator))[-1]
        assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}


def echo_calls(calls: list[Any]) -> list[dict[str, Any]]:
    """What openai_dart sends back: id, name, arguments, nothing else."""
    return [{"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in calls]


async def test_three_turn_tool_conversation_with_thought_signatures(client: AsyncOpenAI, http: aiohttp.ClientSession,
                                                                    emulator: TestServer) -> None:
    """Gemini 3 rejects a missing signature; the id alone must carry it (openai_dart)."""
    model, tools = "gemini-3-pro-preview", [WEATHER, TIME]
    history: list[dict[str, Any]] = [{"role": "user", "content": "Plan my day. " + directive_text(
        function_calls=TWO_CALLS, require_signature=SIG)}]
    first = await client.chat.completions.create(model=model, tools=tools, messages=history)
    calls = first.choices[0].message.tool_calls
    assert decode_call_signature(calls[0].id) == SIG
    history += [{"role": "assistant", "content": None, "tool_calls": echo_calls(calls)},
                {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp": 21}'},
                {"role": "tool", "tool_call_id": calls[1].id, "content": "09:00"}]
    second = await client.chat.completions.create(model=model, tools=tools, messages=history)
    calls2 = second.choices[0].message.tool_calls
    history += [{"role": "assistant", "content": None, "tool_calls": echo_calls(calls2)},
                {"role": "tool", "tool_call_id": calls2[0].id, "content": '{"temp": 22}'},
                {"role": "tool", "tool_call_id": calls2[1].id, "content": "10:00"},
                {"role": "user",
                 "content": "Thanks! " + directive_text(reply="Have a sunny day.", require_signature=SIG)}]
    third = await client.chat.completions.create(model=model, tools=tools, messages=history)
    assert third.choices[0].message.content == "Have a sunny day."
    sent = (await upstream_bodies(http, emulator))[-1]
    model_turns = [c for c in sent["contents"] if c["role"] == "model"]
    assert [t["parts"][0]["thoughtSignature"] for t in model_turns] == [SIG, SIG]
    user_turns = [c for c in sent["contents"] if c["role"] == "user"]
    assert [len([p for p in c["parts"] if "functionResponse" in p]) for c in user_turns][1:3] == [2, 2]

    # Without the signature Gemini 3 refuses: the client sees Gemini's 400, not a 5xx.
    stripped = [dict(m) for m in history[:4]]
    stripped[1] = {"role": "assistant", "content": None, "tool_calls": [
        {**c, "id": f"call_plain{i}"} for i, c in enumerate(echo_calls(calls))]}
    stripped[2] = {**stripped[2], "tool_call_id": "call_plain0"}
    stripped[3] = {**stripped[3], "tool_call_id": "call_plain1"}
    with pytest.raises(BadRequestError) as info:
        await client.chat.completions.create(model=model, tools=tools, messages=stripped)
    assert "thought_signature" in str(info.value)


async def test_reasoning_as_reasoning_content_and_as_think_tags(client: AsyncOpenAI, proxy_url: str,
                                                                http: aiohttp.ClientSession) -> None:
    prompt = [{"role": "user", "content": directive_text(thoughts="Let me think.", reply="42")}]
    reply = await client.chat.completions.create(model="gemini-2.5-flash", reasoning_effort="low", messages=prompt)
    message = reply.choices[0].message
    assert message.content == "42"
    assert message.model_extra["reasoning_content"] == "Let me think."

    stream = await client.chat.completions.create(model="gemini-2.5-flash", reasoning_effort="low", messages=prompt,
                                                  stream=True)
    reasoning, content = "", ""
    async for chunk in stream:
        if chunk.choices:
            reasoning += (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
            content += chunk.choices[0].delta.content or ""
    assert (reasoning, content) == ("Let me think.", "42")

    # Lotti's way: only content is shown, so thoughts come as <think> tags when asked.
    tagged = await client.chat.completions.create(model="gemini-3-flash-preview", reasoning_effort="minimal",
                                                  messages=prompt,
                                                  extra_headers={"X-Reasoning-Format": "think-tags"}, stream=True)
    text = ""
    async for chunk in tagged:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            assert "reasoning_content" not in (chunk.choices[0].delta.model_extra or {})
    assert text == "<think>Let me think.</think>42"


async def test_n_two_choices_in_both_modes(client: AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(model="gemini-2.5-flash", n=2,
                                                 messages=[{"role": "user", "content": "Two takes, please."}])
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.finish_reason == "stop" and c.message.content for c in reply.choices)
    assert reply.choices[0].message.content != reply.choices[1].message.content

    stream = await client.chat.completions.create(model="gemini-2.5-flash", n=2, stream=True,
                                                  messages=[{"role": "user", "content": "Two takes, please."}])
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    async for chunk in stream:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert texts == {0: reply.choices[0].message.content, 1: reply.choices[1].message.content}
    assert finishes == {0: "stop", 1: "stop"}
