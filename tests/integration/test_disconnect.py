"""A client that leaves mid-stream is still billed exactly once, and Gemini is let go."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from aiproxy.appkeys import METER_KEY
from aiproxy.billing.record import CLIENT_DISCONNECTED, UsageRecord
from aiproxy.emulator import directive_text


async def open_streams(http: aiohttp.ClientSession, emulator: TestServer) -> int:
    async with http.get(emulator.make_url("/_emulator/stats")) as resp:
        return int((await resp.json())["open_streams"])


async def test_client_disconnect_mid_stream_bills_once_and_drops_upstream(
    proxy: TestServer, emulator: TestServer, http: aiohttp.ClientSession, billing_lines: Any
) -> None:
    records: list[UsageRecord] = []
    billed = asyncio.Event()

    def on_record(rec: UsageRecord) -> None:
        records.append(rec)
        billed.set()

    proxy.app[METER_KEY].hooks.append(on_record)
    body = {"model": "gpt-4", "stream": True, "user_id": "leaver",
            "messages": [{"role": "user",
                          "content": "long " + directive_text(words=200, chunks=40, chunk_delay_ms=100)}]}
    async with aiohttp.ClientSession() as client:
        resp = await client.post(proxy.make_url("/v1/chat/completions"), json=body)
        first = await resp.content.readuntil(b"\n\n")
        assert first.startswith(b"data: {")
        resp.close()  # walk away mid-stream, like a closed app
    await asyncio.wait_for(billed.wait(), timeout=10)
    assert len(records) == 1 and records[0].status == CLIENT_DISCONNECTED
    assert records[0].prompt_tokens > 0 and records[0].completion_tokens > 0
    (line,) = billing_lines()
    assert "User: leaver" in line and "Model: gpt-4" in line
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await open_streams(http, emulator) and loop.time() < deadline:
        await asyncio.sleep(0.05)  # waiting on a condition, bounded; not used as a sync point
    assert await open_streams(http, emulator) == 0
    assert len(billing_lines()) == 1 and len(records) == 1
