"""End to end with the official `openai` SDK as the client, the proxy routing `anthropic/<id>` to
the Anthropic emulator on loopback: what the client sees, what Anthropic was sent, the ledger
row and the billing line."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import LEDGER_KEY
from aiproxy.billing.pricing import format_usd, load_price_table
from aiproxy.emulator import directive_text
from aiproxy.emulator.anthropic.validate import signature_for
from tests.conftest import EMULATOR_KEY, emulator_url, recorded_requests
from tests.unit.test_translate_media import PDF, PNG, b64

MODEL = "anthropic/claude-sonnet-4-5"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {"type": "function",
           "function": {"name": "get_weather", "description": "Weather of a city", "parameters": CITY}}


@pytest.fixture
async def proxy(proxy_factory: Any, emulator: TestServer, ledger_url: str) -> TestServer:
    return await proxy_factory(anthropic_api_key=EMULATOR_KEY, usage_db_url=ledger_url,
                               anthropic_base_url=f"{emulator_url(emulator)}/anthropic")


def ask(text: str, **directive: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"{text} {directive_text(**directive)}"}]


async def sent_to_anthropic(http: aiohttp.ClientSession, emulator: TestServer) -> list[dict[str, Any]]:
    return [r for r in await recorded_requests(http, emulator) if r["path"] == "/anthropic/v1/messages"]


async def test_buffered_text_with_system_usage_ledger_and_billing(
        openai_client: Any, http: aiohttp.ClientSession, emulator: TestServer, proxy: TestServer,
        billing_lines: Any) -> None:
    resp = await openai_client.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."},
                               *ask("Hi", reply="Hello from Claude.", cache_read=3, cache_creation=2)],
        stop=["END"], temperature=1.5)
    assert resp.model == MODEL and resp.choices[0].message.content == "Hello from Claude."
    assert resp.choices[0].finish_reason == "stop"
    [sent] = await sent_to_anthropic(http, emulator)
    body = sent["body"]
    assert sent["headers"]["anthropic-version"] == "2023-06-01" and "x-api-key" not in sent["headers"]
    assert body["system"] == [{"type": "text", "text": "Be brief."}] and body["max_tokens"] == 4096
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 1.0 and body["model"] == "claude-sonnet-4-5"
    usage = resp.usage
    assert usage.prompt_tokens_details.cached_tokens == 3 and usage.completion_tokens == 5  # ceil(18/4)
    [row] = await proxy.app[LEDGER_KEY].rows()
    assert row["prompt_tokens"] == usage.prompt_tokens and row["completion_tokens"] == 5
    assert row["cached_tokens"] == 3 and row["requested_model"] == MODEL
    assert row["upstream_model"] == "claude-sonnet-4-5" and row["status"] == "ok"
    price, fallback = load_price_table().price_for("claude-sonnet-4-5")
    assert bool(row["price_fallback"]) is fallback  # flagged while the table has no price for it
    cost = price.cost(usage.prompt_tokens, 5, 3, cache_write=2)  # the 2 cache_creation tokens at the write rate
    assert Decimal(str(row["cost_usd"])) == cost
    [line] = billing_lines()
    assert f"Model: {MODEL}" in line and f"{usage.prompt_tokens} input + 5 output" in line
    assert f"Cost: ${format_usd(cost)} USD" in line


async def test_streamed_text_and_usage_chunk(openai_client: Any) -> None:
    stream = await openai_client.chat.completions.create(
        model=MODEL, messages=ask("Hi", reply="one two three four", chunks=3), stream=True,
        stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


async def test_streamed_tool_calls_round_trip(openai_client: Any, http: aiohttp.ClientSession,
                                              emulator: TestServer) -> None:
    calls = [{"name": "get_weather", "input": {"city": "Paris"}}, {"name": "get_weather", "input": {"city": "Rome"}}]
    messages = ask("Weather in Paris and Rome?", tool_uses=calls)
    stream = await openai_client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER],
                                                         tool_choice="auto", stream=True)
    deltas = [c.choices[0].delta for c in [c async for c in stream] if c.choices]
    by_index: dict[int, dict[str, str]] = {}
    for d in deltas:
        for tc in d.tool_calls or ():
            entry = by_index.setdefault(tc.index, {"id": "", "name": "", "args": ""})
            entry["id"] = tc.id or entry["id"]
            entry["name"] = (tc.function.name if tc.function else None) or entry["name"]
            entry["args"] += (tc.function.arguments if tc.function else None) or ""
    assert sorted(by_index) == [0, 1] and by_index[0]["id"] != by_index[1]["id"]
    assert [json.loads(by_index[i]["args"]) for i in (0, 1)] == [{"city": "Paris"}, {"city": "Rome"}]
    history = [*messages,
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": by_index[i]["id"], "type": "function",
                    "function": {"name": "get_weather", "arguments": by_index[i]["args"]}} for i in (0, 1)]},
               {"role": "tool", "tool_call_id": by_index[0]["id"], "content": "sunny"},
               {"role": "tool", "tool_call_id": by_index[1]["id"], "content": "rainy " + directive_text(reply="Done.")}]
    resp = await openai_client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER])
    assert resp.choices[0].message.content == "Done." and resp.choices[0].finish_reason == "stop"
    body = (await sent_to_anthropic(http, emulator))[-1]["body"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    results = body["messages"][2]["content"]
    assert [b["type"] for b in results] == ["tool_result", "tool_result"]  # merged into one user turn
    assert results[0]["content"] == "sunny"


async def test_buffered_tool_call_finish_reason(openai_client: Any, http: aiohttp.ClientSession,
                                                emulator: TestServer) -> None:
    resp = await openai_client.chat.completions.create(
        model=MODEL, messages=ask("w?", tool_uses=[{"name": "get_weather", "input": {"city": "Oslo"}}]),
        tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False)
    assert resp.choices[0].finish_reason == "tool_calls"
    assert json.loads(resp.choices[0].message.tool_calls[0].function.arguments) == {"city": "Oslo"}
    body = (await sent_to_anthropic(http, emulator))[-1]["body"]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    assert body["tools"][0]["input_schema"]["required"] == ["city"]


async def test_thinking_as_reasoning_content_and_signature_back(openai_client: Any, http: aiohttp.ClientSession,
                                                                 emulator: TestServer) -> None:
    messages = ask("Think, then call.", thinking="I need the weather.",
                   tool_uses=[{"name": "get_weather", "input": {"city": "Paris"}}])
    resp = await openai_client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER],
                                                       reasoning_effort="low")
    msg = resp.choices[0].message
    assert msg.reasoning_content == "I need the weather."  # type: ignore[attr-defined]
    sent = (await sent_to_anthropic(http, emulator))[-1]["body"]
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048} and sent["max_tokens"] == 4096 + 2048
    history = [*messages, msg.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "sunny " + directive_text(reply="ok")}]
    second = await openai_client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER],
                                                         reasoning_effort="low")
    assert second.choices[0].finish_reason == "stop"  # the emulator checked the signature
    back = (await sent_to_anthropic(http, emulator))[-1]["body"]["messages"][1]["content"][0]
    assert back == {"type": "thinking", "thinking": "I need the weather.",
                    "signature": signature_for("I need the weather.")}


async def test_thinking_as_think_tags(proxy: TestServer, http: aiohttp.ClientSession) -> None:
    async with http.post(proxy.make_url("/v1/chat/completions"), headers={"X-Reasoning-Format": "think-tags"},
                         json={"model": MODEL, "reasoning_effort": "high",
                               "messages": ask("q", thinking="Hmm.", reply="Answer.")}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["choices"][0]["message"]["content"] == "<think>Hmm.</think>Answer."


async def test_overloaded_becomes_openai_503(openai_client: Any, proxy: TestServer) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        await openai_client.chat.completions.create(model=MODEL, messages=ask("x", error=529))
    assert info.value.status_code == 503 and info.value.body["code"] == "upstream_unavailable"
    with pytest.raises(openai.RateLimitError) as limited:
        await openai_client.chat.completions.create(model=MODEL, messages=ask("x", error=429, retry_after=30))
    assert limited.value.response.headers["Retry-After"] == "30"


async def test_overloaded_is_retried(openai_client: Any) -> None:
    resp = await openai_client.chat.completions.create(
        model=MODEL, messages=ask("x", error=529, error_times=1, key="retry-once", reply="Second try."))
    assert resp.choices[0].message.content == "Second try."


async def test_mid_stream_overload_ends_the_stream(openai_client: Any) -> None:
    stream = await openai_client.chat.completions.create(
        model=MODEL, messages=ask("x", reply="a b c d e f", chunks=4, fail_after=1), stream=True)
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


async def test_not_enabled_is_404_before_anything(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    plain = await proxy_factory()
    async with http.post(plain.make_url("/v1/chat/completions"),
                         json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]}) as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "model_not_found"


async def test_media_remote_image_data_image_and_pdf(proxy_factory: Any, emulator: TestServer,
                                                     http: aiohttp.ClientSession) -> None:
    async def png(_: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", png)
    images = TestServer(app, host="127.0.0.1")
    await images.start_server()
    proxy = await proxy_factory(anthropic_api_key=EMULATOR_KEY, media_fetch_allow_private=True,
                                anthropic_base_url=f"{emulator_url(emulator)}/anthropic")
    client = openai.AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="k", max_retries=0)
    try:
        reply = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "text", "text": "Describe " + directive_text(reply="A cat.")},
            {"type": "image_url", "image_url": {"url": str(images.make_url("/cat.png"))}},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64(PNG)}"}},
            {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{b64(PDF)}", "filename": "a.pdf"}}]}])
    finally:
        await client.close()
        await images.close()
    assert reply.choices[0].message.content == "A cat."
    blocks = (await sent_to_anthropic(http, emulator))[-1]["body"]["messages"][0]["content"]
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)}}
    assert blocks[1:] == [image, image, {"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf", "data": b64(PDF)}}]


async def test_json_schema_answer_via_forced_tool(openai_client: Any, http: aiohttp.ClientSession,
                                                  emulator: TestServer) -> None:
    resp = await openai_client.chat.completions.create(
        model=MODEL, messages=ask("Give x", tool_uses=[{"name": "answer", "input": {"x": 2}}]),
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": {
            "type": "object", "properties": {"x": {"type": "integer"}}}}})
    assert json.loads(resp.choices[0].message.content) == {"x": 2} and resp.choices[0].finish_reason == "stop"
    assert not resp.choices[0].message.tool_calls
    body = (await sent_to_anthropic(http, emulator))[-1]["body"]
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}


async def test_models_list_names_anthropic_models_as_routable(openai_client: Any) -> None:
    models = {m.id: m.owned_by async for m in openai_client.models.list()}
    assert models["anthropic/claude-sonnet-4-5"] == "anthropic"
    assert "gpt-4" in models  # Gemini's aliases stay


async def test_overloaded_model_falls_back_before_the_first_byte(proxy_factory: Any, emulator: TestServer,
                                                                  http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(anthropic_api_key=EMULATOR_KEY, upstream_retries=0,
                                anthropic_base_url=f"{emulator_url(emulator)}/anthropic",
                                # Fallback targets name their provider (README, "Fallbacks and routes").
                                model_fallbacks="anthropic/claude-sonnet-4-5=anthropic/claude-haiku-4-5")
    messages = ask("x", error=529, error_times=1, key="fallback", reply="From Haiku.")
    async with http.post(proxy.make_url("/v1/chat/completions"), json={"model": MODEL, "messages": messages}) as resp:
        assert resp.status == 200 and resp.headers["X-Upstream-Model"] == "claude-haiku-4-5"
        body = await resp.json()
    assert body["model"] == MODEL and body["choices"][0]["message"]["content"] == "From Haiku."
    assert [r["body"]["model"] for r in await sent_to_anthropic(http, emulator)] == ["claude-sonnet-4-5",
                                                                                     "claude-haiku-4-5"]
