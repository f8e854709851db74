"""The Anthropic emulator, validated by the official `anthropic` SDK (its types parse every body
and event; its error classes follow the status and error type) plus raw wire checks."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from aiproxy.emulator import create_emulator_app, directive_text
from aiproxy.emulator.anthropic.validate import signature_for

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


@pytest.fixture
async def server(aiohttp_client):
    return await aiohttp_client(create_emulator_app())


@pytest.fixture
def sdk(server) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="k", base_url=str(server.make_url("/anthropic")), max_retries=0)


def user(text: str, **directive: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"{text} {directive_text(**directive)}" if directive else text}]


async def test_buffered_text_and_usage(sdk) -> None:
    msg = await sdk.messages.create(model="claude-sonnet-4-5", max_tokens=100, system="Be brief.",
                                    messages=user("Hi", reply="Hello there.", cache_read=2, cache_creation=1))
    assert msg.content[0].type == "text" and msg.content[0].text == "Hello there."
    assert msg.stop_reason == "end_turn" and msg.model == "claude-sonnet-4-5"
    assert msg.usage.cache_read_input_tokens == 2 and msg.usage.cache_creation_input_tokens == 1
    total = msg.usage.input_tokens + 3
    assert total > 3 and msg.usage.output_tokens == 3  # ceil(12/4)


async def test_stream_event_sequence_with_thinking_and_tools(sdk) -> None:
    events = []
    async with sdk.messages.stream(
        model="claude-sonnet-4-5", max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        messages=user("Weather?", thinking="Need the tool.", reply="Checking.",
                      tool_uses=[{"name": "get_weather", "input": {"city": "Paris"}}]),
    ) as stream:
        async for event in stream:
            events.append(event)
        final = await stream.get_final_message()
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    deltas = {e.delta.type for e in events if e.type == "content_block_delta"}
    assert deltas == {"thinking_delta", "signature_delta", "text_delta", "input_json_delta"}
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].signature == signature_for("Need the tool.")
    assert final.content[2].input == {"city": "Paris"} and final.stop_reason == "tool_use"


async def test_raw_stream_has_ping_and_event_names(server) -> None:
    resp = await server.post("/anthropic/v1/messages", headers=HEADERS, json={
        "model": "m", "max_tokens": 10, "stream": True, "messages": user("x", reply="ab")})
    text = await resp.text()
    names = [line[7:] for line in text.splitlines() if line.startswith("event: ")]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]


@pytest.mark.parametrize(("body", "needle"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "max_tokens: Field required"),
    ({"max_tokens": 5, "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]},
     'Unexpected role "system"'),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]},
     "roles must alternate"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]}]}, "unexpected `tool_use_id`"),
    ({"max_tokens": 5, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "user", "content": "no result"}]}, "without `tool_result`"),
    ({"max_tokens": 5, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "forged"}]},
        {"role": "user", "content": "y"}]}, "Invalid `signature`"),
    ({"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]}]},
     "must start with a thinking block"),
    ({"max_tokens": 1500, "thinking": {"type": "enabled", "budget_tokens": 2000},
      "messages": [{"role": "user", "content": "x"}]}, "must be greater than `thinking.budget_tokens`"),
])
async def test_validation_rules(sdk, server, body: dict[str, Any], needle: str) -> None:
    if "max_tokens" not in body:  # the SDK itself refuses to send this one
        resp = await server.post("/anthropic/v1/messages", headers=HEADERS, json={"model": "m", **body})
        assert resp.status == 400 and needle in (await resp.json())["error"]["message"]
        return
    with pytest.raises(anthropic.BadRequestError) as info:
        await sdk.messages.create(model="claude-sonnet-4-5", **body)
    assert info.value.status_code == 400 and needle in str(info.value.body)
    assert info.value.body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(("status", "cls", "kind"), [
    (401, anthropic.AuthenticationError, "authentication_error"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (529, anthropic.InternalServerError, "overloaded_error"),
])
async def test_scripted_errors(sdk, status: int, cls: type[Exception], kind: str) -> None:
    with pytest.raises(cls) as info:
        await sdk.messages.create(model="m", max_tokens=5, messages=user("x", error=status, retry_after=7))
    err: Any = info.value
    assert err.status_code == status and err.body["type"] == "error" and err.body["error"]["type"] == kind
    assert err.response.headers["retry-after"] == "7"


async def test_missing_key_and_version(server) -> None:
    resp = await server.post("/anthropic/v1/messages", json={})
    assert resp.status == 401 and (await resp.json())["error"]["type"] == "authentication_error"
    resp = await server.post("/anthropic/v1/messages", headers={"x-api-key": "k"}, json={})
    assert resp.status == 400 and "anthropic-version" in (await resp.json())["error"]["message"]


async def test_mid_stream_error_event(sdk) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        async with sdk.messages.stream(model="m", max_tokens=50,
                                       messages=user("x", reply="a long reply", chunks=4, fail_after=1)) as stream:
            async for _ in stream:
                pass
    assert "overloaded_error" in str(info.value)


async def test_thinking_signature_round_trip(sdk) -> None:
    first = await sdk.messages.create(model="m", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
                                      messages=user("q", tool_uses=[{"name": "f", "input": {}}]))
    tool = first.content[-1]
    second = await sdk.messages.create(
        model="m", max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[{"name": "f", "input_schema": {"type": "object"}}],
        messages=[*user("q"), {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "ok"}]}])
    assert second.stop_reason == "end_turn"
