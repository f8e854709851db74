"""Serving a cache hit: one ledger row flagged `cache_hit` (the tokens the answer would have
cost, the charge CACHE_HIT_PRICE_RATIO of its cost), committed before the answer goes out as
JSON or as an SSE replay. The upstream is never called."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.appkeys import METER_KEY, METERING_KEY
from aiproxy.billing.record import OK, Metering
from aiproxy.cache.policy import SAVED
from aiproxy.cache.replay import fresh_body, sse_replay
from aiproxy.openai.sse import SSE_HEADERS


def usage_into(m: Metering, usage: dict[str, Any] | None) -> None:
    """The cached answer's usage as this request's token counts (for reporting and the charge)."""
    usage = usage or {}
    m.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    m.completion_tokens = int(usage.get("completion_tokens") or 0)
    m.total_tokens = m.prompt_tokens + m.completion_tokens
    m.reasoning_tokens = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    m.cached_tokens = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    m.reported = bool(usage)


async def record_hit(request: web.Request, m: Metering) -> None:
    """The hit's one ledger row (before the first byte); the saving counted for /metrics."""
    m.cache_hit, m.status = True, OK
    m.first_token_at = time.monotonic()
    request[METERING_KEY] = m
    rec = await request.app[METER_KEY].finish(m)
    if rec is not None:
        SAVED.inc(float(rec.cache_savings_usd))


async def serve_hit(request: web.Request, m: Metering, cached: dict[str, Any], *, completion_id: str,
                    model: str, stream: bool, include_usage: bool) -> web.StreamResponse:
    usage_into(m, cached.get("usage"))
    await record_hit(request, m)
    body = fresh_body(cached, completion_id, int(time.time()), model)
    if not stream:
        return web.Response(body=jsonutil.dumps(body), content_type="application/json")
    resp = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await resp.prepare(request)
    await resp.write_eof(sse_replay(body, include_usage))
    return resp
