"""Lotti's real request shape in think-tags mode: its earlier `<think>` blocks never reach Gemini.

Lotti streams with `Accept: application/json`, sends `max_completion_tokens`, shows thoughts only
as `<think>…</think>` in content, and sends that content back in the assistant turns of the next
request. The emulator records what the proxy sent and counts its prompt tokens.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from tests.conftest import generation_requests

THOUGHTS = "The user wants the capital of France. I recall it is Paris, a city on the Seine, " * 8
LOTTI_HEADERS = {"Accept": "application/json", "Authorization": "Bearer lotti", "X-Reasoning-Format": "think-tags"}


def lotti_body(previous_answer: str) -> dict[str, Any]:
    return {
        "model": "gemini-2.5-flash", "stream": True, "max_completion_tokens": 2000,
        "messages": [
            {"role": "system", "content": "You are Lotti's assistant."},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": previous_answer},
            {"role": "user", "content": "And of Italy?"},
        ],
    }


async def stream_usage(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """Lotti reads `usage` from whichever chunk carries it."""
    async with http.post(f"{url}/v1/chat/completions", json=body, headers=LOTTI_HEADERS) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        raw = (await resp.read()).decode()
    chunks = [jsonutil.loads(e.removeprefix("data: ")) for e in raw.split("\n\n") if e and e != "data: [DONE]"]
    usages = [c["usage"] for c in chunks if c.get("usage")]
    assert usages, raw[-300:]
    return usages[-1]


async def test_lotti_think_history_is_not_sent_to_gemini_nor_billed(
        proxy_url: str, http: aiohttp.ClientSession, emulator: TestServer) -> None:
    clean = await stream_usage(http, proxy_url, lotti_body("Paris."))
    with_thoughts = await stream_usage(http, proxy_url, lotti_body(f"<think>{THOUGHTS}</think>\n\nParis."))
    sent = [r["body"] for r in await generation_requests(http, emulator)][-1]
    assert sent["contents"][1] == {"role": "model", "parts": [{"text": "Paris."}]}
    assert "<think>" not in jsonutil.dumps_str(sent) and "I recall" not in jsonutil.dumps_str(sent)
    assert with_thoughts["prompt_tokens"] == clean["prompt_tokens"]

    # The same words later in the answer are the answer itself: sent, and counted.
    mentioned = await stream_usage(http, proxy_url, lotti_body(f"Paris. <think>{THOUGHTS}</think>"))
    assert mentioned["prompt_tokens"] > clean["prompt_tokens"] + 100
