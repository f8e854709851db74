"""Model names never reach the upstream URL unchecked, and never grow /metrics.

A rejected name is a 400 on param `model` with no call to Gemini, no ledger row and no billing
line; only names from the operator's configuration become metric labels.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import LEDGER_KEY
from tests.conftest import recorded_requests
from tests.ledger.test_billing_in_app import start_proxy, stub_upstream  # noqa: F401 - registers the `upstream` fixture in this module

REJECTED = [
    "gemini-2.5-flash:generateContent#",
    "gemini-2.5-flash:generateContent",
    "gemini-embedding-001:batchEmbedContents",
    "gemini-2.5-flash\r\nX-Injected: 1",
    "gemini-2.5-flash\n",
    "gemini-2.5-flash?alt=json",
    "gemini-2.5-flash#frag",
    "gemini/gemini-2.5-flash/extra",
    "../gemini-2.5-flash",
    "gemini-2.5-flash%3AgenerateContent",
    "gemini 2.5 flash",
    "",
    "gemini-" + "x" * 200,
    42,
    ["gemini-2.5-flash"],
]


async def no_upstream_calls(http: aiohttp.ClientSession, emulator: TestServer) -> list[Any]:
    return [r for r in await recorded_requests(http, emulator) if "/models/" in r["path"]]


@pytest.fixture
async def proxy(proxy_factory: Any, ledger_url: str) -> TestServer:
    """The proxy on each ledger backend: a refused name leaves no row on either."""
    return await proxy_factory(usage_db_url=ledger_url)


@pytest.mark.parametrize("name", REJECTED, ids=repr)
@pytest.mark.parametrize("route", ["chat", "chat-stream", "embeddings"])
async def test_rejected_model_name_is_400_before_any_upstream_call(
        proxy: TestServer, emulator: TestServer, http: aiohttp.ClientSession, billing_lines: Any,
        name: object, route: str) -> None:
    await http.delete(emulator.make_url("/_emulator/requests"))
    if route == "embeddings":
        url, body = "/v1/embeddings", {"model": name, "input": "hello"}
    else:
        url = "/v1/chat/completions"
        body = {"model": name, "stream": route == "chat-stream", "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(proxy.make_url(url), json=body) as resp:
        assert resp.status == 400
        assert resp.headers["Content-Type"].startswith("application/json")
        error = (await resp.json())["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "model")
    assert await no_upstream_calls(http, emulator) == []
    assert await proxy.app[LEDGER_KEY].rows() == []
    assert billing_lines() == []


@pytest.mark.parametrize("name", ["openai/gpt-4o", "anthropic/claude-sonnet-4", "models/gpt-4"])
async def test_unrouted_provider_prefix_is_404_without_an_upstream_call(
        proxy: TestServer, emulator: TestServer, http: aiohttp.ClientSession, name: str) -> None:
    await http.delete(emulator.make_url("/_emulator/requests"))
    async with http.post(proxy.make_url("/v1/chat/completions"),
                         json={"model": name, "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "model_not_found"
    assert await no_upstream_calls(http, emulator) == []


@pytest.mark.parametrize("name", ["gemini/gemini-2.5-flash", "models/gemini-2.5-flash", "gemini/gpt-4"])
async def test_gemini_prefixed_names_are_served(proxy: TestServer, http: aiohttp.ClientSession, name: str) -> None:
    async with http.post(proxy.make_url("/v1/chat/completions"),
                         json={"model": name, "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 200
        assert (await resp.json())["model"] == name  # the client's name is echoed


async def test_3000_junk_model_names_do_not_grow_metrics(upstream: TestServer) -> None:
    proxy = await start_proxy(upstream, "memory://")  # the stub answers for any model id
    try:
        async with aiohttp.ClientSession() as http:
            async def scrape() -> str:
                async with http.get(proxy.make_url("/metrics")) as resp:
                    return await resp.text()

            async def one(i: int, gate: asyncio.Semaphore) -> None:
                async with gate, http.post(proxy.make_url("/v1/chat/completions"), json={
                        "model": f"gemini-junk-{i:04d}", "messages": [{"role": "user", "content": "hi"}]}) as resp:
                    assert resp.status == 200  # served and billed: only the label is bounded
                    await resp.read()

            await one(-1, asyncio.Semaphore(1))  # the `other` series exist from here on
            before = len(await scrape())
            gate = asyncio.Semaphore(32)
            await asyncio.gather(*(one(i, gate) for i in range(3000)))
            text = await scrape()
        assert "gemini-junk-" not in text
        assert len(text) - before < 2_000, len(text) - before
        assert len(await proxy.app[LEDGER_KEY].rows()) == 3001
    finally:
        await proxy.close()
