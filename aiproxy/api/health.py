"""Liveness: answers without touching Gemini or the ledger, so it is cheap to poll."""

from __future__ import annotations

from aiohttp import web

_HEALTHY = b'{"status":"healthy"}'


async def health(request: web.Request) -> web.Response:
    return web.Response(body=_HEALTHY, content_type="application/json")
