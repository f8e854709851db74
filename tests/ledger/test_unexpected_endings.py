"""However a request ends once Gemini has it, the ledger row carries what Gemini spent.

A proxy fault after the upstream call started (a translator bug, a failed `prepare`, a failed
write) used to leave a row with 0 tokens, $0 and status `ok`. A client that hung up while the
proxy waited for Gemini's first byte left no row at all. Both backends, real emulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from aiproxy.app import create_app
from aiproxy.appkeys import LEDGER_KEY
from aiproxy.billing.record import CLIENT_DISCONNECTED, INTERNAL_ERROR
from aiproxy.config import load_settings
from aiproxy.emulator import directive_text
from aiproxy.openai.sse import DONE
from aiproxy.providers.gemini.response import StreamTranslator
from tests.conftest import EMULATOR_KEY, emulator_url

GUARD = 20.0  # seconds: a hang fails here instead of stalling the suite
# Chunks apart in time, so each reaches the proxy in its own network read and leaves in its own
# write (chunks read together are translated and written together: upstream.sse_batches).
ONE_CHUNK_PER_READ = {"words": 60, "chunks": 10, "chunk_delay_ms": 20}
PROMPT = "please write a long answer about the sea"


@pytest.fixture(name="proxy")  # other modules import it as `proxy_on_ledger` (no clash with their `proxy` argument)
async def proxy_on_ledger(emulator: TestServer, ledger_url: str) -> AsyncIterator[TestServer]:
    settings = load_settings({"GEMINI_API_KEY": EMULATOR_KEY, "GEMINI_BASE_URL": emulator_url(emulator),
                              "USAGE_DB_URL": ledger_url})
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def body(stream: bool, **directive: Any) -> dict[str, Any]:
    text = PROMPT + " " + directive_text(**directive)
    return {"model": "gemini-2.5-flash", "stream": stream, "user": "alice",
            "messages": [{"role": "user", "content": text}]}


async def post(proxy: TestServer, payload: dict[str, Any]) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(proxy.make_url("/v1/chat/completions"), json=payload) as resp:
            return resp.status, await asyncio.wait_for(resp.read(), GUARD)


async def only_row(proxy: TestServer) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD
    while not (rows := await proxy.app[LEDGER_KEY].rows()) and loop.time() < deadline:
        await asyncio.sleep(0.02)  # bounded wait for a row written after the client left
    (row,) = rows
    return row


def fail_on_feed(monkeypatch: pytest.MonkeyPatch, nth: int) -> None:
    """A translator bug on the nth Gemini chunk, after the chunk was read (its usage counts too),
    as a bug in translating its parts would strike. A buffered answer is one chunk
    (generateContent's body), a streamed one many."""
    feed = StreamTranslator.feed
    calls = {"n": 0}

    def broken(self: StreamTranslator, chunk: dict[str, Any]) -> Any:
        out = feed(self, chunk)
        calls["n"] += 1
        if calls["n"] == nth:
            raise RuntimeError("translator bug")
        return out

    monkeypatch.setattr(StreamTranslator, "feed", broken)


def is_proxy_sse(resp: web.StreamResponse) -> bool:
    """The proxy's own streamed answer (the emulator in this process writes SSE too)."""
    return resp.headers.get("X-Accel-Buffering") == "no"


def assert_billed_as_internal_error(row: dict[str, Any]) -> None:
    assert row["status"] == INTERNAL_ERROR
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert bool(row["estimated"])
    assert Decimal(str(row["cost_usd"])) > 0


async def test_translator_bug_mid_stream_bills_tokens_and_ends_with_error_and_done(
        proxy: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_on_feed(monkeypatch, 3)
    status, raw = await post(proxy, body(True, **ONE_CHUNK_PER_READ))
    assert status == 200 and raw.endswith(DONE)
    events = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
    error = jsonutil.loads(events[-2])["error"]
    assert error["code"] == "internal_error" and error["type"] == "server_error"
    assert len(events) >= 4  # the two chunks before the fault went out first
    assert_billed_as_internal_error(await only_row(proxy))


async def test_translator_bug_in_buffered_mode_is_a_500_and_billed(
        proxy: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_on_feed(monkeypatch, 1)
    status, raw = await post(proxy, body(False, words=60, chunks=10))
    assert status == 500
    assert jsonutil.loads(raw)["error"]["code"] == "internal_error"
    assert_billed_as_internal_error(await only_row(proxy))


async def test_failed_write_mid_stream_bills_tokens_and_ends_with_done(
        proxy: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    write = web.StreamResponse.write
    calls = {"n": 0}

    async def flaky(self: web.StreamResponse, data: bytes) -> None:
        if is_proxy_sse(self):
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("write failed")
        await write(self, data)

    monkeypatch.setattr(web.StreamResponse, "write", flaky)
    status, raw = await post(proxy, body(True, **ONE_CHUNK_PER_READ))
    assert status == 200 and raw.endswith(DONE)
    assert b'"code":"internal_error"' in raw
    assert_billed_as_internal_error(await only_row(proxy))


async def test_failed_prepare_is_a_500_and_bills_the_prompt(
        proxy: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    prepare = web.StreamResponse.prepare

    async def failing(self: web.StreamResponse, request: web.BaseRequest) -> Any:
        if is_proxy_sse(self):
            raise RuntimeError("prepare failed")
        return await prepare(self, request)

    monkeypatch.setattr(web.StreamResponse, "prepare", failing)
    status, raw = await post(proxy, body(True, words=20))
    assert status == 500 and jsonutil.loads(raw)["error"]["code"] == "internal_error"
    row = await only_row(proxy)
    assert row["status"] == INTERNAL_ERROR and row["prompt_tokens"] > 0 and bool(row["estimated"])
    assert Decimal(str(row["cost_usd"])) > 0


async def upstream_calls(http: aiohttp.ClientSession, emulator: TestServer) -> int:
    async with http.get(emulator.make_url("/_emulator/stats")) as resp:
        return int((await resp.json())["requests_total"])


async def test_client_gone_before_the_first_byte_leaves_an_estimated_row(
        proxy: TestServer, emulator: TestServer) -> None:
    payload = body(True, delay_ms=5000, words=10)
    async with aiohttp.ClientSession() as http:
        task = asyncio.create_task(http.post(proxy.make_url("/v1/chat/completions"), json=payload))
        deadline = asyncio.get_running_loop().time() + GUARD
        while not await upstream_calls(http, emulator) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)  # until Gemini (the emulator) has the prompt
        task.cancel()  # the client hangs up while the proxy waits for Gemini's first byte
        with pytest.raises(asyncio.CancelledError):
            await task
    row = await only_row(proxy)
    assert row["status"] == CLIENT_DISCONNECTED and bool(row["estimated"])
    chars = len(payload["messages"][0]["content"])
    assert row["prompt_tokens"] == -(-chars // 4) and row["completion_tokens"] == 0
    assert Decimal(str(row["cost_usd"])) > 0


async def test_embeddings_fault_after_gemini_embedded_is_a_500_and_billed(
        proxy: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(values: list[float], fmt: str) -> Any:
        raise RuntimeError("encoder bug")

    monkeypatch.setattr("aiproxy.api.embeddings.encode_vector", broken)
    async with aiohttp.ClientSession() as http:
        async with http.post(proxy.make_url("/v1/embeddings"),
                             json={"model": "gemini-embedding-001", "input": ["some text to embed"] * 3}) as resp:
            assert resp.status == 500
            assert (await resp.json())["error"]["code"] == "internal_error"
    row = await only_row(proxy)
    assert row["status"] == INTERNAL_ERROR and row["prompt_tokens"] > 0
    assert Decimal(str(row["cost_usd"])) > 0
