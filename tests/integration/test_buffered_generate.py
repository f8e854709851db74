"""A buffered request (stream: false) is answered from Gemini's generateContent: one JSON body
through the same translator, instead of a stream folded by the proxy.

Each scenario is sent twice through the real proxy and emulator, streamed and buffered; the
buffered answer must be what the streamed chunks fold to (ids and timestamps aside), with the
same usage and the same ledger row, and only the buffered one may have asked for generateContent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from aiproxy import jsonutil
from aiproxy.appkeys import METER_KEY
from aiproxy.billing.record import CLIENT_DISCONNECTED, UsageRecord
from aiproxy.emulator import directive_text
from aiproxy.openai.fold import ChunkFolder
from aiproxy.openai.sse import DONE
from aiproxy.providers.gemini.tools import decode_call_signature
from tests.conftest import generation_requests
from tests.integration.opshelp import Answer, chat, upstream_paths

GUARD = 20.0  # seconds: a hang fails here instead of stalling the suite
SIG = "c2lnbmF0dXJlLWJ1ZmZlcmVk"  # the thought signature the emulator sends with its calls
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
TWO_CALLS = [{"name": "get_weather", "args": {"city": "Paris"}}, {"name": "get_time", "args": {}}]
PERSON = {"type": "json_schema", "json_schema": {"name": "person", "schema": {
    "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"]}}}

# (id, request fields, directive, request headers)
SCENARIOS = [
    pytest.param({}, {"words": 30, "chunks": 5}, {}, id="plain-text"),
    pytest.param({"reasoning_effort": "low"}, {"thoughts": "First, the sea.", "words": 20, "chunks": 4}, {},
                 id="reasoning-content"),
    pytest.param({"reasoning_effort": "low"}, {"thoughts": "First, the sea.", "words": 20, "chunks": 4},
                 {"X-Reasoning-Format": "think-tags"}, id="think-tags"),
    pytest.param({"tools": [WEATHER, TIME], "reasoning_effort": "low"},
                 {"function_calls": TWO_CALLS, "text": "Checking both.", "require_signature": SIG, "chunks": 2}, {},
                 id="parallel-tool-calls"),
    pytest.param({"tools": [WEATHER, TIME]},
                 {"function_calls": TWO_CALLS, "calls_then_stop": True, "require_signature": SIG}, {},
                 id="tool-calls-then-stop"),
    pytest.param({"tools": [WEATHER, TIME], "parallel_tool_calls": False},
                 {"function_calls": TWO_CALLS, "require_signature": SIG}, {}, id="parallel-tool-calls-off"),
    pytest.param({"max_completion_tokens": 5}, {"words": 40, "chunks": 4}, {}, id="length-finish"),
    pytest.param({"n": 2}, {"words": 12, "chunks": 3}, {}, id="two-choices"),
    pytest.param({"logprobs": True, "top_logprobs": 2}, {"words": 8, "chunks": 2}, {}, id="logprobs"),
    pytest.param({"response_format": PERSON}, {}, {}, id="json-schema"),
    pytest.param({}, {"block": "SAFETY"}, {}, id="blocked-prompt"),
    pytest.param({}, {"finish": "RECITATION", "words": 12, "chunks": 3}, {}, id="content-filtered"),
    pytest.param({}, {"cached_tokens": 5, "words": 10}, {}, id="cached-prompt"),
]
# Gemini withholds a filtered candidate's content in generateContent (its stream has already sent
# the text before the verdict), so only there may the buffered text differ from the stream's.
WITHHELD = {"content-filtered"}


def request_body(stream: bool, fields: dict[str, Any], directive: dict[str, Any]) -> dict[str, Any]:
    content = "Tell me about lighthouses " + directive_text(**directive)
    return {"model": "gemini-2.5-flash", "stream": stream, "user": "alice",
            "messages": [{"role": "user", "content": content}], **fields}


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without what differs per request by design: id, created and the random part
    of each tool call id (the thought signature it carries must survive either way)."""
    out = {k: v for k, v in body.items() if k not in ("id", "created")}
    for choice in out["choices"]:
        for call in choice["message"].get("tool_calls") or ():
            assert call["id"].startswith("call_")
            call["id"] = decode_call_signature(call["id"])
    return out


def folded(answer: Answer) -> dict[str, Any]:
    """The streamed answer folded into one body, as the proxy folded it before generateContent."""
    assert answer.status == 200 and answer.events[-1] == "[DONE]", answer.body
    folder = ChunkFolder()
    for event in answer.events[:-1]:
        folder.add(jsonutil.loads(event))
    return folder.result()


def row(record: UsageRecord) -> dict[str, Any]:
    keys = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "total_tokens", "cost_usd",
            "status", "estimated", "upstream_model", "requested_model", "provider", "user")
    return {k: getattr(record, k) for k in keys}


async def post(http: aiohttp.ClientSession, proxy: TestServer, body: dict[str, Any],
               headers: dict[str, str]) -> Answer:
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body, headers=headers) as resp:
        return Answer(resp.status, dict(resp.headers), await asyncio.wait_for(resp.read(), GUARD))


@pytest.fixture
async def metered(proxy: TestServer) -> tuple[TestServer, list[UsageRecord]]:
    records: list[UsageRecord] = []
    proxy.app[METER_KEY].hooks.append(records.append)
    return proxy, records


@pytest.mark.parametrize(("fields", "directive", "headers"), SCENARIOS)
async def test_buffered_answer_is_the_fold_of_the_stream(
        metered: tuple[TestServer, list[UsageRecord]], emulator: TestServer, http: aiohttp.ClientSession,
        request: pytest.FixtureRequest, fields: dict[str, Any], directive: dict[str, Any],
        headers: dict[str, str]) -> None:
    proxy, records = metered
    streamed = await post(http, proxy, request_body(True, fields, directive), headers)
    buffered = await post(http, proxy, request_body(False, fields, directive), headers)
    assert buffered.status == 200 and buffered.headers["Content-Type"].startswith("application/json")

    expected, got = comparable(folded(streamed)), comparable(buffered.json())
    if request.node.callspec.id in WITHHELD:
        assert [c["message"]["content"] for c in got["choices"]] == [""]
        assert expected["choices"][0]["message"]["content"]  # the stream had sent text before the verdict
        for choice in expected["choices"]:
            choice["message"]["content"] = ""
    assert got == expected
    assert got["usage"]["total_tokens"] > 0

    # One ledger row each, equal but for the mode; the streamed flag still says how the client asked.
    stream_rec, buffered_rec = records
    assert row(buffered_rec) == row(stream_rec) and buffered_rec.cost_usd > 0
    assert (stream_rec.streamed, buffered_rec.streamed) == (True, False)

    # Gemini was asked the same question, once as a stream and once for one body.
    sent = await generation_requests(http, emulator)
    assert [r["path"].rpartition(":")[2] for r in sent] == ["streamGenerateContent", "generateContent"]
    assert [r["query"] for r in sent] == [{"alt": "sse"}, {}]
    assert sent[0]["body"] == sent[1]["body"]


PRO_BUFFERED = "/v1beta/models/gemini-2.5-pro:generateContent"
FLASH_BUFFERED = "/v1beta/models/gemini-3.5-flash:generateContent"
FAST = {"upstream_retry_base_delay": 0.01, "upstream_retry_max_delay": 0.05}


async def test_buffered_503_is_retried_then_falls_back(proxy_factory: Any, emulator: TestServer,
                                                       http: aiohttp.ClientSession, billing_lines: Any) -> None:
    proxy = await proxy_factory(upstream_retries=1, model_fallbacks="gemini-2.5-pro=gemini-3.5-flash", **FAST)
    base = str(proxy.make_url(""))
    retried = await chat(http, base, stream=False, words=6, error=503, error_times=1, key="once")
    assert retried.status == 200 and retried.headers["X-Upstream-Model"] == "gemini-2.5-pro"
    assert len(retried.json()["choices"][0]["message"]["content"].split()) == 6
    fell_back = await chat(http, base, stream=False, words=6, error=503, error_times=2, key="twice")
    assert fell_back.status == 200 and fell_back.headers["X-Upstream-Model"] == "gemini-3.5-flash"
    assert await upstream_paths(http, emulator) == [PRO_BUFFERED] * 2 + [PRO_BUFFERED] * 2 + [FLASH_BUFFERED]
    assert len(billing_lines()) == 2


async def test_buffered_answers_wait_the_answer_timeout_streams_the_first_byte_timeout(
        proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    """generateContent's status line comes with the whole answer, so a buffered request waits
    UPSTREAM_ANSWER_TIMEOUT for it, while a stream only has to start within UPSTREAM_TIMEOUT:
    a long answer is not a 504 because the client asked for it in one piece."""
    slow = {"words": 12, "chunks": 6, "chunk_delay_ms": 200}  # first chunk at once, the last after 1 s
    proxy = await proxy_factory(upstream_timeout=0.5)  # the answer timeout stays at its 600 s default
    base = str(proxy.make_url(""))
    streamed = await chat(http, base, stream=True, **slow)
    assert streamed.status == 200 and streamed.body.endswith(DONE) and len(streamed.text.split()) == 12
    buffered = await chat(http, base, stream=False, **slow)
    assert buffered.status == 200 and len(buffered.json()["choices"][0]["message"]["content"].split()) == 12

    proxy = await proxy_factory(upstream_answer_timeout=0.5)
    base = str(proxy.make_url(""))
    buffered = await chat(http, base, stream=False, **slow)
    assert buffered.status == 504 and buffered.json()["error"]["code"] == "upstream_timeout"
    quick = await chat(http, base, stream=False, words=12, chunks=2, chunk_delay_ms=100)
    assert quick.status == 200


async def test_buffered_client_gone_while_gemini_generates_is_billed_once(
        metered: tuple[TestServer, list[UsageRecord]], emulator: TestServer) -> None:
    proxy, records = metered
    body = request_body(False, {}, {"words": 40, "chunks": 40, "chunk_delay_ms": 100})  # a 4 s answer
    async with aiohttp.ClientSession() as http:
        task = asyncio.create_task(http.post(proxy.make_url("/v1/chat/completions"), json=body))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GUARD
        while not await generation_requests(http, emulator) and loop.time() < deadline:
            await asyncio.sleep(0.02)  # until Gemini (the emulator) has the prompt
        task.cancel()  # the client hangs up while Gemini is still generating
        with pytest.raises(asyncio.CancelledError):
            await task
        while not records and loop.time() < deadline:
            await asyncio.sleep(0.02)
    (rec,) = records
    assert rec.status == CLIENT_DISCONNECTED and rec.estimated and rec.prompt_tokens > 0


async def test_buffered_responses_api_uses_generate_content(openai_client: AsyncOpenAI, emulator: TestServer,
                                                            http: aiohttp.ClientSession) -> None:
    prompt = "Describe a harbour " + directive_text(words=16, chunks=4)
    buffered = await openai_client.responses.create(model="gemini-2.5-flash", input=prompt, store=False)
    events = [e async for e in await openai_client.responses.create(model="gemini-2.5-flash", input=prompt,
                                                                    store=False, stream=True)]
    streamed = events[-1].response
    assert buffered.output_text == streamed.output_text and len(buffered.output_text.split()) == 16
    assert buffered.usage == streamed.usage and buffered.status == streamed.status == "completed"
    sent = await generation_requests(http, emulator)
    assert [r["path"].rpartition(":")[2] for r in sent] == ["generateContent", "streamGenerateContent"]
