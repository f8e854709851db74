"""`openai/<id>` and declared OpenAI-compatible providers, end to end: the official `openai` SDK
as the client, the real proxy, the emulator's OpenAI sub-app as the upstream (loopback sockets).

Checks what the client sees (content, chunk order, usage only where asked, the model it sent,
the upstream's ids), what the upstream was sent (the validated request passed through, usage
always asked), errors mapped like Gemini's, and the ledger row and billing line.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from aiproxy.appkeys import LEDGER_KEY, METER_KEY
from aiproxy.emulator import directive_text
from aiproxy.emulator.tokens import count_tokens
from tests.conftest import EMULATOR_KEY, emulator_url, recorded_requests
from tests.emulator.test_openai_sdk import collect_tool_calls
from tests.integration.test_chat_sdk import BILLING_RE

PRICES = """
[models."gpt-4o-mini"]
input = "0.15"
output = "0.60"
cached_input = "0.075"
"""


def ask(text: str, **directive: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"{text} {directive_text(**directive)}" if directive else text}]


def openai_settings(emulator: TestServer, **more: Any) -> dict[str, Any]:
    return {"openai_api_key": EMULATOR_KEY, "openai_base_url": f"{emulator_url(emulator)}/openai/v1", **more}


@pytest.fixture
async def proxy(proxy_factory: Any, emulator: TestServer) -> TestServer:
    return await proxy_factory(**openai_settings(emulator))


async def client_for(proxy: TestServer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="any-key-works", max_retries=0, timeout=30)


async def upstream_chats(http: aiohttp.ClientSession, emulator: TestServer) -> list[dict[str, Any]]:
    return [r for r in await recorded_requests(http, emulator) if r["path"] == "/openai/v1/chat/completions"]


async def test_buffered_passes_the_request_through_and_asks_for_usage(
        openai_client: AsyncOpenAI, http: aiohttp.ClientSession, emulator: TestServer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *ask("Hello", reply="Hi there.")]
    raw = await openai_client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=messages, temperature=0.3, max_completion_tokens=50, stop=["END"],
        extra_body={"user_id": "alice"})
    resp = raw.parse()
    assert raw.headers["X-Upstream-Model"] == "gpt-4o-mini"
    assert resp.model == "openai/gpt-4o-mini" and resp.choices[0].message.content == "Hi there."
    assert resp.choices[0].finish_reason == "stop"
    prompt = sum(count_tokens(m["content"]) for m in messages)
    assert resp.usage is not None and (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (
        prompt, count_tokens("Hi there."))
    [sent] = await upstream_chats(http, emulator)
    assert sent["body"] == {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.3,
                            "max_completion_tokens": 50, "stop": ["END"], "stream": True,
                            "stream_options": {"include_usage": True}}
    assert sent["headers"].get("Authorization") is None  # recorded without it: the emulator hides the key
    assert resp.id.startswith("chatcmpl-")


async def test_stream_without_include_usage_gets_no_usage_chunk(openai_client: AsyncOpenAI,
                                                                 http: aiohttp.ClientSession,
                                                                 emulator: TestServer) -> None:
    stream = await openai_client.chat.completions.create(
        model="openai/gpt-4.1", messages=ask("Hi", reply="one two three four"), stream=True)
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)  # no `choices: []` chunk: the client did not ask
    assert all(c.model == "openai/gpt-4.1" for c in chunks) and len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    [sent] = await upstream_chats(http, emulator)
    assert sent["body"]["stream_options"] == {"include_usage": True}  # metered all the same


async def test_stream_with_include_usage_ends_with_the_usage_chunk(openai_client: AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(
        model="openai/o4-mini", messages=ask("Hi", reply="fine", reasoning_tokens=12, cached_tokens=3),
        stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    *body, last = chunks
    assert last.choices == [] and last.model == "openai/o4-mini" and last.usage is not None
    assert last.usage.completion_tokens == count_tokens("fine") + 12
    assert last.usage.completion_tokens_details.reasoning_tokens == 12
    assert last.usage.prompt_tokens_details.cached_tokens == 3
    assert body[-1].choices[0].finish_reason == "stop" and all(c.usage is None for c in body)


async def test_streamed_tool_calls_then_the_tool_result_turn(openai_client: AsyncOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    calls = [{"name": "get_weather", "args": {"city": "Paris"}}, {"name": "get_weather", "args": {"city": "Rome"}}]
    stream = await openai_client.chat.completions.create(
        model="openai/gpt-4o", messages=ask("Weather?", function_calls=calls), tools=tools, stream=True)
    built, finish = await collect_tool_calls(stream)
    assert finish == "tool_calls" and sorted(built) == [0, 1]
    assert built[0]["id"].startswith("call_") and built[0]["id"] != built[1]["id"]
    assert built[1]["arguments"] == '{"city":"Rome"}'
    history: list[Any] = [*ask("Weather?"), {"role": "assistant", "content": None, "tool_calls": [
        {"id": built[i]["id"], "type": "function",
         "function": {"name": "get_weather", "arguments": built[i]["arguments"]}} for i in (0, 1)]}]
    history += [{"role": "tool", "tool_call_id": built[i]["id"], "content": "sunny"} for i in (0, 1)]
    answer = await openai_client.chat.completions.create(model="openai/gpt-4o", messages=history, tools=tools)
    assert answer.choices[0].finish_reason == "stop"  # the emulator accepted the tool results as answers


async def test_upstream_429_reaches_the_client_as_openai_error(openai_client: AsyncOpenAI, proxy: TestServer) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await openai_client.chat.completions.create(model="openai/gpt-4o", messages=ask("x", error=429, retry_after=30))
    assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers["Retry-After"] == "30"
    assert await proxy.app[LEDGER_KEY].rows() == []  # the upstream generated nothing: nothing billed


async def test_upstream_503_is_retried_by_the_shared_policy(proxy_factory: Any, emulator: TestServer) -> None:
    proxy = await proxy_factory(**openai_settings(emulator, upstream_retry_base_delay=0.01))
    async with await client_for(proxy) as client:
        resp = await client.chat.completions.create(
            model="openai/gpt-4o", messages=ask("x", error=503, error_times=1, key="retry-503", reply="ok"))
    assert resp.choices[0].message.content == "ok"


async def test_rejected_key_is_a_502_that_never_shows_it(proxy_factory: Any, emulator: TestServer,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sk-proxy-secret-0123456789"
    proxy = await proxy_factory(**openai_settings(emulator, openai_api_key=secret))
    async with await client_for(proxy) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="openai/gpt-4o", messages=ask("x"))
    assert caught.value.status_code == 502 and caught.value.code == "upstream_auth_error"
    assert secret not in caught.value.response.text and secret not in caplog.text


async def test_openai_prefix_without_a_key_is_404_before_any_upstream_call(
        proxy_factory: Any, http: aiohttp.ClientSession, emulator: TestServer) -> None:
    proxy = await proxy_factory()  # no OPENAI_API_KEY
    async with await client_for(proxy) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="openai/gpt-4o", messages=ask("x"))
        with pytest.raises(openai.NotFoundError):
            await client.embeddings.create(model="openai/text-embedding-3-small", input="x")
    assert caught.value.code == "model_not_found"
    assert await upstream_chats(http, emulator) == []


@pytest.fixture
def ollama_models_file(tmp_path: Path, emulator: TestServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OLLAMA_API_KEY", EMULATOR_KEY)
    path = tmp_path / "models.toml"
    path.write_text(f'[providers.ollama]\nbase_url = "{emulator_url(emulator)}/openai/v1"\n'
                    'api_key_env = "OLLAMA_API_KEY"\ndialect = "openai"\n')
    return path


async def test_declared_openai_compatible_provider(proxy_factory: Any, ollama_models_file: Path) -> None:
    proxy = await proxy_factory(models_file=ollama_models_file)
    async with await client_for(proxy) as client:
        stream = await client.chat.completions.create(model="ollama/llama3.2", messages=ask("Hi", reply="Hello!"),
                                                      stream=True, stream_options={"include_usage": True})
        chunks = [c async for c in stream]
        ids = [m.id async for m in client.models.list()]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    assert chunks[-1].usage is not None and chunks[-1].model == "ollama/llama3.2"
    assert "ollama/llama3.2" in ids and "gpt-4o" in ids  # Gemini's aliases still listed


async def test_embeddings_pass_through_with_the_upstream_count(openai_client: AsyncOpenAI) -> None:
    resp = await openai_client.embeddings.create(model="openai/text-embedding-3-small", input=["alpha", "beta"],
                                                 dimensions=16)
    assert [len(d.embedding) for d in resp.data] == [16, 16] and resp.model == "openai/text-embedding-3-small"
    assert resp.usage.prompt_tokens == count_tokens("alpha") + count_tokens("beta")
    assert "estimated" not in resp.model_dump()["usage"]


async def test_models_list_names_openai_models_by_prefix(openai_client: AsyncOpenAI) -> None:
    models = {m.id: m.owned_by async for m in openai_client.models.list()}
    assert models["openai/gpt-4o"] == "openai" and models["gpt-4o"] == "aiproxy"


@pytest.mark.parametrize("streamed", [False, True])
async def test_ledger_row_and_billing_line(proxy_factory: Any, emulator: TestServer, ledger_url: str, tmp_path: Path,
                                          billing_lines: Any, streamed: bool) -> None:
    prices = tmp_path / "pricing.toml"
    prices.write_text(PRICES)
    proxy = await proxy_factory(**openai_settings(emulator, usage_db_url=ledger_url, pricing_file=prices))
    messages = ask("Count me", reply="Counted, thanks.", reasoning_tokens=10, cached_tokens=4)
    async with await client_for(proxy) as client:
        if streamed:
            stream = await client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages, stream=True,
                                                          extra_body={"user_id": "bob"})
            [c async for c in stream]
        else:
            await client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages,
                                                 extra_body={"user_id": "bob"})
    prompt = count_tokens(messages[0]["content"])
    completion = count_tokens("Counted, thanks.") + 10
    [row] = await proxy.app[LEDGER_KEY].rows()
    assert (row["requested_model"], row["upstream_model"]) == ("openai/gpt-4o-mini", "gpt-4o-mini")
    assert (row["prompt_tokens"], row["completion_tokens"], row["reasoning_tokens"], row["cached_tokens"]) == (
        prompt, completion, 10, 4)
    assert not row["estimated"] and not row["price_fallback"] and row["status"] == "ok"
    # Cached input at the cached rate, reasoning as output (USD per million tokens).
    cost = (Decimal(prompt - 4) * Decimal("0.15") + 4 * Decimal("0.075") + completion * Decimal("0.60")) / 1_000_000
    assert Decimal(str(row["cost_usd"])) == cost
    assert proxy.app[METER_KEY].prices.price_for("gpt-4o-mini")[1] is False
    [line] = billing_lines()
    match = BILLING_RE.match(line)
    assert match is not None
    assert (match["user"], match["model"], int(match["inp"]), int(match["out"])) == (
        "bob", "openai/gpt-4o-mini", prompt, completion)


async def test_upstream_cut_mid_stream_is_an_error_event_and_an_estimated_row(
        openai_client: AsyncOpenAI, proxy: TestServer) -> None:
    stream = await openai_client.chat.completions.create(
        model="openai/gpt-4o", messages=ask("x", reply="one two three four five six", fail_after=2,
                                             fail_mode="truncate"), stream=True)
    with pytest.raises(openai.APIError) as caught:
        [c async for c in stream]
    assert "ended before the answer was complete" in caught.value.message
    [row] = await proxy.app[LEDGER_KEY].rows()
    assert row["status"] == "upstream_error" and row["estimated"] and row["completion_tokens"] > 0


async def test_fallback_chain_within_the_provider(proxy_factory: Any, emulator: TestServer) -> None:
    proxy = await proxy_factory(**openai_settings(emulator, upstream_retries=0,
                                                  model_fallbacks="openai/gpt-4o=openai/gpt-4o-mini"))
    async with await client_for(proxy) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="openai/gpt-4o", messages=ask("x", error=429, error_times=1, key="fallback-429", reply="ok"))
    assert raw.headers["X-Upstream-Model"] == "gpt-4o-mini"
    assert raw.parse().model == "openai/gpt-4o" and raw.parse().choices[0].message.content == "ok"
