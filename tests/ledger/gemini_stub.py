"""A minimal Gemini streamGenerateContent stand-in for the ledger's end-to-end tests.

Each call streams `chunks` text parts `gap` seconds apart, then a final chunk with finishReason
and usageMetadata (prompt 10 + 1 per request-body KiB, candidates = chunks), like Gemini's SSE.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web


def create_stub(chunks: int = 5, gap: float = 0.01) -> web.Application:
    async def stream(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(chunks):
            part = {"candidates": [{"content": {"role": "model", "parts": [{"text": f"w{i} "}]}, "index": 0}]}
            await resp.write(b"data: " + orjson.dumps(part) + b"\r\n\r\n")
            await asyncio.sleep(gap)
        prompt = 10 + len(body) // 1024
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": chunks, "totalTokenCount": prompt + chunks}
        final = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "."}]}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": usage,
        }
        await resp.write(b"data: " + orjson.dumps(final) + b"\r\n\r\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1beta/models/{model}:streamGenerateContent", stream)
    return app
