"""The response cache for the Responses API (issue 15), end to end with the official `openai` SDK.

A Responses hit calls nothing upstream and is what a miss would have been with a new response
id: the same output items (new item ids, naming the new response), usage, the full event
sequence when streamed, stored for GET and `previous_response_id` when `store: true`, and one
ledger row flagged `cache_hit` charged CACHE_HIT_PRICE_RATIO of the miss's cost.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI, NotFoundError
from prometheus_client import REGISTRY

from aiproxy.appkeys import LEDGER_KEY
from aiproxy.emulator import directive_text
from tests.integration.test_response_cache import generate_calls

MODEL = "gemini-2.5-flash"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
async def proxy(proxy_factory: Any, ledger_url: str) -> TestServer:
    """Stored responses and the ledger rows live in the ledger's database: both backends."""
    return await proxy_factory(response_cache="memory", usage_db_url=ledger_url,
                               cache_hit_price_ratio=Decimal("0.5"))


@pytest.fixture
async def client(proxy: TestServer) -> AsyncIterator[AsyncOpenAI]:
    sdk = AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="unused", max_retries=0, timeout=30)
    yield sdk
    await sdk.close()


async def create(client: AsyncOpenAI, **kwargs: Any) -> tuple[str | None, Any]:
    """(X-Cache, the parsed Response) of one buffered `responses.create`."""
    raw = await client.responses.with_raw_response.create(model=MODEL, **kwargs)
    return raw.headers.get("X-Cache"), raw.parse()


async def stream_events(client: AsyncOpenAI, **kwargs: Any) -> tuple[str | None, list[Any]]:
    """(X-Cache, every event) of one `responses.create(stream=True)`, parsed by the SDK."""
    raw = await client.responses.with_raw_response.create(model=MODEL, stream=True, **kwargs)
    return raw.headers.get("X-Cache"), [event async for event in raw.parse()]


def collapsed(kinds: list[str]) -> list[str]:
    """Event types with runs of the same delta type as one (a hit sends each text in one delta)."""
    return [k for i, k in enumerate(kinds) if not (k.endswith(".delta") and i and kinds[i - 1] == k)]


async def test_buffered_repeat_is_a_hit_with_a_new_response_id(
        client: AsyncOpenAI, proxy: TestServer, emulator: TestServer, http: aiohttp.ClientSession) -> None:
    ask = {"input": "Say hi. " + directive_text(reply="Hi there", thoughts="Greeting back."),
           "instructions": "Be brief.", "reasoning": {"effort": "low", "summary": "auto"}, "metadata": {"k": "v"}}
    x_miss, miss = await create(client, **ask)
    saved_before = REGISTRY.get_sample_value("aiproxy_response_cache_saved_usd_total") or 0.0
    x_hit, hit = await create(client, **ask)
    assert (x_miss, x_hit) == ("MISS", "HIT")
    assert await generate_calls(http, emulator) == 1
    assert hit.id.startswith("resp_") and hit.id != miss.id and hit.created_at >= miss.created_at
    assert (hit.status, hit.output_text, hit.metadata, hit.instructions) == ("completed", "Hi there", {"k": "v"},
                                                                             "Be brief.")
    assert [item.type for item in hit.output] == [item.type for item in miss.output] == ["reasoning", "message"]
    assert hit.output[0].summary[0].text == miss.output[0].summary[0].text == "Greeting back."
    hex_id = hit.id.removeprefix("resp_")
    assert all(item.id.split("_")[1] == hex_id for item in hit.output)  # new item ids, naming the new response
    assert hit.usage == miss.usage and hit.usage is not None and hit.usage.output_tokens > 0

    miss_row, hit_row = await proxy.app[LEDGER_KEY].rows()  # type: ignore[attr-defined]
    assert (miss_row["endpoint"], hit_row["endpoint"]) == ("responses", "responses")
    assert (bool(miss_row["cache_hit"]), bool(hit_row["cache_hit"])) == (False, True)
    assert (hit_row["prompt_tokens"], hit_row["completion_tokens"], hit_row["reasoning_tokens"]) == (
        hit.usage.input_tokens, hit.usage.output_tokens, hit.usage.output_tokens_details.reasoning_tokens)
    full = Decimal(str(miss_row["cost_usd"]))
    assert full > 0 and Decimal(str(hit_row["cost_usd"])) == full * Decimal("0.5")
    assert Decimal(str(hit_row["cache_savings_usd"])) == full - full * Decimal("0.5")
    saved = (REGISTRY.get_sample_value("aiproxy_response_cache_saved_usd_total") or 0.0) - saved_before
    assert saved == pytest.approx(float(full / 2))  # /metrics counts the saving too
    assert hit_row["status"] == "ok"


async def test_streamed_hit_is_the_event_sequence_a_miss_streams(
        client: AsyncOpenAI, proxy: TestServer, emulator: TestServer, http: aiohttp.ClientSession) -> None:
    ask = {"input": "Count. " + directive_text(reply="one two three four", chunks=3, thoughts="Counting."),
           "reasoning": {"effort": "low", "summary": "auto"}}
    x_miss, live = await stream_events(client, **ask)
    x_hit, replay = await stream_events(client, **ask)
    assert (x_miss, x_hit) == ("MISS", "HIT")
    assert await generate_calls(http, emulator) == 1
    kinds = [e.type for e in replay]
    assert collapsed(kinds) == collapsed([e.type for e in live])
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert {"response.output_item.added", "response.content_part.added", "response.output_text.delta",
            "response.output_text.done", "response.content_part.done", "response.output_item.done",
            "response.reasoning_summary_text.delta"} <= set(kinds)
    assert [e.sequence_number for e in replay] == list(range(len(replay)))
    assert "".join(e.delta for e in replay if e.type == "response.output_text.delta") == "one two three four"
    done, first = replay[-1].response, live[-1].response
    assert replay[0].response.id == done.id != first.id
    assert done.output_text == first.output_text and done.usage == first.usage

    # The SDK's stream helper rebuilds the response from the events and rejects an inconsistent sequence.
    async with client.responses.stream(model=MODEL, **ask) as stream:
        [event async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == "one two three four" and final.id != done.id
    rows = await proxy.app[LEDGER_KEY].rows()  # type: ignore[attr-defined]
    assert [(bool(r["cache_hit"]), bool(r["streamed"])) for r in rows] == [(False, True), (True, True), (True, True)]


async def test_function_call_hit_keeps_the_call(client: AsyncOpenAI, emulator: TestServer,
                                                 http: aiohttp.ClientSession) -> None:
    ask = {"input": "Weather? " + directive_text(function_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}]),
           "tools": [WEATHER], "store": False}
    _, miss = await create(client, **ask)
    x_hit, hit = await create(client, **ask)
    assert x_hit == "HIT" and await generate_calls(http, emulator) == 1
    [call] = [item for item in hit.output if item.type == "function_call"]
    [live] = [item for item in miss.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments), call.call_id) == ("get_weather", {"city": "Oslo"}, live.call_id)
    assert call.id != live.id
    _, other = await create(client, **{**ask, "tool_choice": "none"})  # tool_choice shapes the answer
    assert await generate_calls(http, emulator) == 2 and other.id != hit.id


async def test_stored_hit_is_retrievable_and_continues_like_a_miss(
        client: AsyncOpenAI, emulator: TestServer, http: aiohttp.ClientSession) -> None:
    ask = {"input": "Name a colour. " + directive_text(reply="Blue.")}
    _, first = await create(client, **ask)
    x_hit, hit = await create(client, **ask)
    assert x_hit == "HIT"
    got = await client.responses.retrieve(hit.id)
    assert (got.id, got.output_text, [i.id for i in got.output]) == (hit.id, "Blue.", [i.id for i in hit.output])
    # The key is the resolved conversation: continuing either response is the same question.
    x_next, after_first = await create(client, input="Another?", previous_response_id=first.id)
    x_again, after_hit = await create(client, input="Another?", previous_response_id=hit.id)
    assert (x_next, x_again) == ("MISS", "HIT")
    assert after_hit.output_text == after_first.output_text and after_hit.previous_response_id == hit.id
    assert await generate_calls(http, emulator) == 2
    _, unstored = await create(client, **ask, store=False)  # a hit with store: false is not kept
    with pytest.raises(NotFoundError):
        await client.responses.retrieve(unstored.id)


async def test_no_store_bypasses_and_no_cache_refreshes(client: AsyncOpenAI, emulator: TestServer,
                                                        http: aiohttp.ClientSession) -> None:
    ask = {"input": "Hello. " + directive_text(reply="Hi.")}
    assert (await create(client, **ask, extra_headers={"Cache-Control": "no-store"}))[0] == "BYPASS"
    assert (await create(client, **ask))[0] == "MISS"  # no-store kept nothing
    assert (await create(client, **ask, extra_headers={"Cache-Control": "no-cache"}))[0] == "MISS"
    assert (await create(client, **ask))[0] == "HIT"
    assert await generate_calls(http, emulator) == 3


@pytest.mark.parametrize("finish", ["MAX_TOKENS", "SAFETY"])
async def test_incomplete_answers_are_not_stored(client: AsyncOpenAI, emulator: TestServer,
                                                 http: aiohttp.ClientSession, finish: str) -> None:
    ask = {"input": "Go on. " + directive_text(finish=finish), "max_output_tokens": 16}
    for _ in range(2):
        x_cache, resp = await create(client, **ask)
        assert (x_cache, resp.status) == ("MISS", "incomplete")
    assert await generate_calls(http, emulator) == 2


async def test_chat_and_responses_share_the_answer_of_the_same_request(
        client: AsyncOpenAI, emulator: TestServer, http: aiohttp.ClientSession) -> None:
    question = "Shared? " + directive_text(reply="Shared answer.")
    chat = await client.chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": question}])
    x_cache, resp = await create(client, instructions="Be brief.", input=question)
    assert x_cache == "HIT" and resp.output_text == chat.choices[0].message.content == "Shared answer."
    assert await generate_calls(http, emulator) == 1
