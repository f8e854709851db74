"""Retries and model fallbacks before the first byte, against the emulator's scripted errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from aiproxy.appkeys import METER_KEY
from aiproxy.billing.record import UsageRecord
from aiproxy.openai.sse import DONE
from aiproxy.providers.gemini.client import GeminiClient
from aiproxy.providers.retry import RetryPolicy
from aiproxy.server.serve import free_port
from tests.integration.opshelp import chat, metric, upstream_paths

PRO = "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
FLASH = "/v1beta/models/gemini-3.5-flash:streamGenerateContent"
# A buffered request asks for one body (generateContent), with the same retries and fallbacks.
PRO_BUFFERED = "/v1beta/models/gemini-2.5-pro:generateContent"
FLASH_BUFFERED = "/v1beta/models/gemini-3.5-flash:generateContent"
FAST = {"upstream_retry_base_delay": 0.01, "upstream_retry_max_delay": 0.05}


def recorder(server: TestServer) -> list[UsageRecord]:
    records: list[UsageRecord] = []
    server.app[METER_KEY].hooks.append(records.append)
    return records


async def test_429_storm_is_retried_to_a_complete_answer(proxy_factory: Any, emulator: TestServer,
                                                         http: aiohttp.ClientSession, billing_lines: Any) -> None:
    proxy = await proxy_factory(upstream_retries=3, **FAST)
    before = metric("aiproxy_upstream_retries_total", model="gemini-2.5-pro", reason="429")
    answer = await chat(http, str(proxy.make_url("")), words=12, error=429, error_times=3, key="storm")
    assert answer.status == 200 and answer.body.endswith(DONE)
    assert len(answer.text.split()) == 12
    assert await upstream_paths(http, emulator) == [PRO] * 4
    assert metric("aiproxy_upstream_retries_total", model="gemini-2.5-pro", reason="429") - before == 3
    assert len(billing_lines()) == 1


async def test_retries_used_up_answer_the_last_error(proxy_factory: Any, emulator: TestServer,
                                                     http: aiohttp.ClientSession, billing_lines: Any) -> None:
    proxy = await proxy_factory(upstream_retries=2, **FAST)
    answer = await chat(http, str(proxy.make_url("")), error=503)
    assert answer.status == 503
    assert answer.json()["error"]["code"] == "upstream_unavailable"
    assert await upstream_paths(http, emulator) == [PRO] * 3
    assert billing_lines() == []  # nothing was generated, nothing is billed


async def test_500_is_retried_but_400_is_not(proxy_factory: Any, emulator: TestServer,
                                             http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(upstream_retries=2, **FAST)
    ok = await chat(http, str(proxy.make_url("")), error=500, error_times=1, key="five-hundred")
    assert ok.status == 200
    bad = await chat(http, str(proxy.make_url("")), error=400)
    assert bad.status == 400
    assert await upstream_paths(http, emulator) == [PRO] * 3


async def test_retry_after_beyond_the_cap_goes_to_the_client_at_once(proxy_factory: Any, emulator: TestServer,
                                                                     http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(upstream_retries=3, upstream_retry_max_delay=5)
    answer = await chat(http, str(proxy.make_url("")), stream=False, error=429, retry_after=60)
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "60"
    assert answer.json()["error"]["code"] == "rate_limit_exceeded"
    assert await upstream_paths(http, emulator) == [PRO_BUFFERED]


async def test_no_retry_starts_after_the_deadline(proxy_factory: Any, emulator: TestServer,
                                                  http: aiohttp.ClientSession) -> None:
    # Each wait is at least Retry-After (1 s): the first retry fits in 1.5 s, a second cannot.
    proxy = await proxy_factory(upstream_retries=5, upstream_retry_deadline=1.5, upstream_retry_max_delay=2)
    started = time.monotonic()
    answer = await chat(http, str(proxy.make_url("")), error=503, retry_after=1)
    assert time.monotonic() - started >= 1.0  # Gemini's Retry-After was waited out, not ignored
    assert answer.status == 503
    assert await upstream_paths(http, emulator) == [PRO] * 2


async def test_fallback_model_answers_on_503(proxy_factory: Any, emulator: TestServer,
                                             http: aiohttp.ClientSession, billing_lines: Any) -> None:
    proxy = await proxy_factory(upstream_retries=0, model_fallbacks="gemini-2.5-pro=gemini-3.5-flash")
    records = recorder(proxy)
    before = metric("aiproxy_model_fallbacks_total", from_model="gemini-2.5-pro", to_model="gemini-3.5-flash",
                    reason="503")
    for stream in (True, False):
        answer = await chat(http, str(proxy.make_url("")), stream=stream, words=5, error=503, error_times=1,
                            key=f"fb-{stream}")
        assert answer.status == 200
        assert answer.headers["X-Upstream-Model"] == "gemini-3.5-flash"
    assert await upstream_paths(http, emulator) == [PRO, FLASH, PRO_BUFFERED, FLASH_BUFFERED]
    assert [r.upstream_model for r in records] == ["gemini-3.5-flash"] * 2
    assert [r.requested_model for r in records] == ["gpt-4"] * 2
    assert len(billing_lines()) == 2
    assert metric("aiproxy_model_fallbacks_total", from_model="gemini-2.5-pro", to_model="gemini-3.5-flash",
                  reason="503") - before == 2


async def test_no_fallback_when_the_primary_answers(proxy_factory: Any, emulator: TestServer,
                                                    http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(model_fallbacks="gemini-2.5-pro=gemini-3.5-flash")
    answer = await chat(http, str(proxy.make_url("")), stream=False, words=3)
    assert answer.headers["X-Upstream-Model"] == "gemini-2.5-pro"
    assert await upstream_paths(http, emulator) == [PRO_BUFFERED]


async def test_fallback_body_is_rebuilt_for_the_fallback_model(proxy_factory: Any, emulator: TestServer,
                                                               http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(upstream_retries=0, model_fallbacks="gemini-2.5-pro=gemini-3.5-flash")
    body = {"model": "gpt-4", "reasoning_effort": "low",
            "messages": [{"role": "user", "content": '#emu {"error": 429, "error_times": 1, "key": "rb"}'}]}
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body) as resp:
        assert resp.status == 200, await resp.text()
    async with http.get(emulator.make_url("/_emulator/requests")) as resp:
        sent = [r["body"] for r in await resp.json()]
    from aiproxy.openai.types import parse_chat_request
    from aiproxy.providers.gemini.request import build_gemini_request

    req = parse_chat_request(body)
    assert sent == [build_gemini_request(req, "gemini-2.5-pro"), build_gemini_request(req, "gemini-3.5-flash")]


async def test_connection_errors_are_retried_then_502() -> None:
    client = GeminiClient(f"http://127.0.0.1:{free_port()}", "k")
    client.retry_policy = RetryPolicy(retries=2, base_delay=0.01, max_delay=0.02)
    await client.start()
    before = metric("aiproxy_upstream_retries_total", model="gemini-2.5-pro", reason="connect")
    from aiproxy.observability.metrics import MetricsEvents, ModelLabels

    client.events = MetricsEvents(ModelLabels({"gemini-2.5-pro"}))
    try:
        try:
            await client.stream_generate("gemini-2.5-pro", b"{}")
        except Exception as exc:  # noqa: BLE001 - asserted below
            err = exc
        assert (getattr(err, "status", None), getattr(err, "code", None)) == (502, "upstream_unreachable")
        assert metric("aiproxy_upstream_retries_total", model="gemini-2.5-pro", reason="connect") - before == 2
    finally:
        await client.close()


async def test_first_byte_timeout_falls_back_and_is_not_retried() -> None:
    seen: list[str] = []
    gate = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if "gemini-2.5-pro" in request.path:
            await gate.wait()  # never answers while the test runs
        chunk = {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]}
        return web.Response(body=b"data: " + jsonutil.dumps(chunk) + b"\n\n", content_type="text/event-stream")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = GeminiClient(str(server.make_url("")), "k", first_byte_timeout=0.2)
    client.retry_policy = RetryPolicy(retries=3, base_delay=0.01)
    client.fallbacks = {"gemini-2.5-pro": ("gemini-3.5-flash",)}
    await client.start()
    try:
        stream = await asyncio.wait_for(client.stream_generate("gemini-2.5-pro", b"{}"), 10)  # guard only
        assert stream.model == "gemini-3.5-flash"
        assert [c async for c in stream][0]["candidates"][0]["finishReason"] == "STOP"
        stream.release()
        assert seen == [PRO, FLASH]  # one attempt on the timed-out model: timeouts are not retried
    finally:
        gate.set()
        await client.close()
        await server.close()
