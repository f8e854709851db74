"""A request cut off before Gemini's usage is billed at the prompt estimate, media included.

Counting text alone billed an 800x600 photo as a few tokens; the estimate now counts it by
Gemini's image rule (4 tiles of 258 tokens). Both ledger backends, real emulator.
"""

from __future__ import annotations

import asyncio
import base64

import aiohttp
from aiohttp.test_utils import TestServer

from aiproxy.billing.estimate import estimate_text_tokens
from aiproxy.billing.record import CLIENT_DISCONNECTED
from aiproxy.emulator import directive_text
from tests.ledger.test_unexpected_endings import only_row, proxy_on_ledger  # noqa: F401 - registers the `proxy` fixture in this module
from tests.unit.test_estimate import png


async def test_cut_off_image_request_is_billed_with_the_image_tokens(proxy: TestServer) -> None:
    text = "describe this photo " + directive_text(no_usage=True, words=200, chunks=40, chunk_delay_ms=50)
    image = "data:image/png;base64," + base64.b64encode(png(800, 600)).decode("ascii")
    body = {"model": "gemini-2.5-flash", "stream": True, "user": "alice",
            "messages": [{"role": "user", "content": [{"type": "text", "text": text},
                                                      {"type": "image_url", "image_url": {"url": image}}]}]}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(proxy.make_url("/v1/chat/completions"), json=body)
        first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 20)
        assert first.startswith(b"data: {")
        resp.close()  # gone mid-stream, before Gemini's usageMetadata
    row = await only_row(proxy)
    assert row["status"] == CLIENT_DISCONNECTED and bool(row["estimated"])
    assert row["prompt_tokens"] == estimate_text_tokens(len(text)) + 1032  # 800x600: 4 tiles of 258
