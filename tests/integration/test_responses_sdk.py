"""The Responses API end to end with the official `openai` SDK: proxy + Gemini emulator on loopback."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI, BadRequestError, NotFoundError

from aiproxy.appkeys import LEDGER_KEY
from aiproxy.emulator import directive_text
from aiproxy.providers.gemini.tools import decode_call_signature
from tests.integration.test_tools_sdk import upstream_bodies

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
SIG = "c2lnbmF0dXJlLW9uZS10d28tdGhyZWU="
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


async def test_create_buffered_text_usage_and_ledger_row(openai_client: AsyncOpenAI, proxy: TestServer,
                                                         billing_lines: Any) -> None:
    resp = await openai_client.responses.create(model="gemini-2.5-flash",
                                                input="Say hi. " + directive_text(reply="Hi there"),
                                         instructions="Be brief.", max_output_tokens=100, metadata={"k": "v"})
    assert resp.id.startswith("resp_") and resp.object == "response" and resp.status == "completed"
    assert resp.output_text == "Hi there"
    [item] = resp.output
    assert item.type == "message" and item.role == "assistant" and item.content[0].type == "output_text"
    assert resp.usage is not None and resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0
    assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert resp.usage.input_tokens_details.cached_tokens == 0
    assert resp.metadata == {"k": "v"} and resp.instructions == "Be brief."
    rows = await proxy.app[LEDGER_KEY].rows()  # type: ignore[attr-defined]
    assert [(r["endpoint"], r["prompt_tokens"], r["completion_tokens"], r["reasoning_tokens"]) for r in rows] == [
        ("responses", resp.usage.input_tokens, resp.usage.output_tokens,
         resp.usage.output_tokens_details.reasoning_tokens)]
    assert len(billing_lines()) == 1


async def test_incomplete_when_cut_by_the_limit(openai_client: AsyncOpenAI) -> None:
    resp = await openai_client.responses.create(model="gemini-2.5-flash", input=directive_text(finish="MAX_TOKENS"),
                                         max_output_tokens=16)
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None and resp.incomplete_details.reason == "max_output_tokens"


async def test_stream_events_in_order_validated_by_the_sdk_helper(openai_client: AsyncOpenAI) -> None:
    async with openai_client.responses.stream(model="gemini-2.5-flash",
                                       input=directive_text(reply="one two three four", chunks=3)) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert kinds.count("response.output_text.delta") >= 2
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "one two three four"
    assert final.output_text == "one two three four" and final.usage is not None and final.usage.output_tokens > 0


async def test_tool_loop_with_function_call_output_and_signature_stateless(
        openai_client: AsyncOpenAI, http: aiohttp.ClientSession, emulator: TestServer) -> None:
    paris = [{"name": "get_weather", "args": {"city": "Paris"}}]
    prompt = "Weather in Paris? " + directive_text(function_calls=paris, require_signature=SIG)
    first = await openai_client.responses.create(model="gemini-3-flash-preview", input=prompt, tools=[WEATHER],
                                                 store=False, include=["reasoning.encrypted_content"])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert decode_call_signature(calls[0].call_id) == SIG
    second = await openai_client.responses.create(
        model="gemini-3-flash-preview", tools=[WEATHER], store=False,
        input=[{"role": "user", "content": prompt}, *[item.model_dump(exclude_none=True) for item in first.output],
               {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}])
    assert second.status == "completed"
    body = (await upstream_bodies(http, emulator))[-1]
    model_turn = body["contents"][1]
    assert model_turn["parts"][0]["functionCall"]["name"] == "get_weather"
    assert model_turn["parts"][0]["thoughtSignature"] == SIG
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"


async def test_streamed_function_call_events(openai_client: AsyncOpenAI) -> None:
    async with openai_client.responses.stream(
            model="gemini-2.5-flash", tools=[WEATHER],
            input=directive_text(function_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}])) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    [call] = final.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Oslo"}


async def test_json_schema_via_text_format(openai_client: AsyncOpenAI, http: aiohttp.ClientSession,
                                           emulator: TestServer) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}
    resp = await openai_client.responses.create(model="gemini-2.5-flash",
                                         input="A number. " + directive_text(reply='{"n": 4}'),
                                         text={"format": {"type": "json_schema", "name": "num", "schema": schema,
                                                          "strict": True}})
    assert json.loads(resp.output_text) == {"n": 4}
    config = (await upstream_bodies(http, emulator))[-1]["generationConfig"]
    assert config["responseMimeType"] == "application/json"


async def test_image_input_reaches_gemini_inline(openai_client: AsyncOpenAI, http: aiohttp.ClientSession,
                                                 emulator: TestServer) -> None:
    await openai_client.responses.create(model="gemini-2.5-flash", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}]}])
    parts = (await upstream_bodies(http, emulator))[-1]["contents"][0]["parts"]
    assert parts[1]["inlineData"]["mimeType"] == "image/png"


async def test_unsupported_builtin_tool_is_a_400_naming_it(openai_client: AsyncOpenAI) -> None:
    with pytest.raises(BadRequestError) as err:
        await openai_client.responses.create(model="gemini-2.5-flash", input="hi", tools=[{"type": "web_search"}])
    assert "web_search" in err.value.message and err.value.body["param"] == "tools[0].type"


async def test_reasoning_summary_and_encrypted_content(openai_client: AsyncOpenAI) -> None:
    resp = await openai_client.responses.create(model="gemini-2.5-flash",
                                                input=directive_text(thoughts="Let me think."),
                                         reasoning={"effort": "low", "summary": "auto"},
                                         include=["reasoning.encrypted_content"])
    reasoning = resp.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Let me think."
    assert reasoning.encrypted_content
    assert resp.usage is not None and resp.usage.output_tokens_details.reasoning_tokens > 0


async def test_previous_response_id_get_and_delete(openai_client: AsyncOpenAI, http: aiohttp.ClientSession,
                                                   emulator: TestServer) -> None:
    first = await openai_client.responses.create(model="gemini-2.5-flash",
                                          input="My name is Ada. " + directive_text(reply="Hello Ada"))
    second = await openai_client.responses.create(model="gemini-2.5-flash", input="What is my name?",
                                           previous_response_id=first.id)
    assert second.previous_response_id == first.id
    contents = (await upstream_bodies(http, emulator))[-1]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0]["text"] == "Hello Ada"
    fetched = await openai_client.responses.retrieve(first.id)
    assert fetched.id == first.id and fetched.output_text == "Hello Ada"
    await openai_client.responses.delete(first.id)
    with pytest.raises(NotFoundError):
        await openai_client.responses.retrieve(first.id)
    with pytest.raises(BadRequestError):
        await openai_client.responses.create(model="gemini-2.5-flash", input="again", previous_response_id=first.id)


async def test_store_false_keeps_nothing(openai_client: AsyncOpenAI) -> None:
    resp = await openai_client.responses.create(model="gemini-2.5-flash", input="hi", store=False)
    with pytest.raises(NotFoundError):
        await openai_client.responses.retrieve(resp.id)


async def test_stream_broken_upstream_ends_with_error_and_failed(openai_client: AsyncOpenAI, proxy: TestServer) -> None:
    stream = await openai_client.responses.create(
        model="gemini-2.5-flash", stream=True,
        input=directive_text(reply="one two three four five six", chunks=4, fail_after=2, fail_mode="reset"))
    events = [event async for event in stream]
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed" and events[-1].response.error.code == "server_error"
    [row] = await proxy.app[LEDGER_KEY].rows()  # type: ignore[attr-defined]
    assert row["endpoint"] == "responses" and row["status"] == "upstream_error" and row["streamed"]


async def test_content_filter_is_incomplete(openai_client: AsyncOpenAI, proxy: TestServer) -> None:
    resp = await openai_client.responses.create(model="gemini-2.5-flash", input=directive_text(finish="SAFETY"))
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None and resp.incomplete_details.reason == "content_filter"
    [row] = await proxy.app[LEDGER_KEY].rows()  # type: ignore[attr-defined]
    assert row["status"] == "content_filter"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": 5}, "input"),
    ({"input": [{"type": "file_search_call", "id": "x"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
     "input[0].content[0].image_url"),
    ({"input": "hi", "tool_choice": {"type": "file_search"}}, "tool_choice"),
    ({"input": "hi", "include": ["file_search_call.results"]}, "include[0]"),
    ({}, "input"),
])
async def test_bad_requests_name_the_field(http: aiohttp.ClientSession, proxy_url: str, body: dict[str, Any],
                                           param: str) -> None:
    async with http.post(f"{proxy_url}/v1/responses", json={"model": "gemini-2.5-flash", **body}) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


async def test_usage_is_the_ledger_rows_even_when_the_upstream_reports_none(openai_client: AsyncOpenAI,
                                                                            proxy: TestServer) -> None:
    resp = await openai_client.responses.create(model="gemini-2.5-flash",
                                                input="Hello there " + directive_text(no_usage=True))
    [row] = await proxy.app[LEDGER_KEY].rows()  # type: ignore[attr-defined]
    assert row["estimated"] and resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (
        row["prompt_tokens"], row["completion_tokens"], row["total_tokens"])
    assert resp.usage.input_tokens > 0


async def test_streamed_reasoning_summary_then_text(openai_client: AsyncOpenAI) -> None:
    async with openai_client.responses.stream(
            model="gemini-2.5-flash", reasoning={"effort": "low", "summary": "auto"},
            input=directive_text(thoughts="Thinking hard.", reply="Done")) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds.index("response.reasoning_summary_part.added") < kinds.index("response.reasoning_summary_text.delta")
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index("response.content_part.added")
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == "Thinking hard." and final.output_text == "Done"
