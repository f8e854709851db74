"""A minimal Gemini stand-in for the ledger's end-to-end tests: streamGenerateContent, and
generateContent for buffered requests.

Each streamed call sends `chunks` text parts `gap` seconds apart, then a final chunk with
finishReason and usageMetadata (prompt 10 + 1 per request-body KiB, candidates = chunks), like
Gemini's SSE; generateContent answers the same text and usage in one body after as long.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web


def create_stub(chunks: int = 5, gap: float = 0.01) -> web.Application:
    def final(body: bytes, text: str) -> dict[str, Any]:
        prompt = 10 + len(body) // 1024
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": chunks, "totalTokenCount": prompt + chunks}
        return {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": usage,
        }

    async def stream(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(chunks):
            part = {"candidates": [{"content": {"role": "model", "parts": [{"text": f"w{i} "}]}, "index": 0}]}
            await resp.write(b"data: " + orjson.dumps(part) + b"\r\n\r\n")
            await asyncio.sleep(gap)
        await resp.write(b"data: " + orjson.dumps(final(body, ".")) + b"\r\n\r\n")
        return resp

    async def generate(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(gap * chunks)
        text = "".join(f"w{i} " for i in range(chunks)) + "."
        return web.Response(body=orjson.dumps(final(body, text)), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1beta/models/{model}:streamGenerateContent", stream)
    app.router.add_post("/v1beta/models/{model}:generateContent", generate)
    return app
