"""The emulator's aiohttp application: routes, API-key check, request recording, stats."""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.emulator import errors
from aiproxy.emulator.anthropic import PREFIX as ANTHROPIC_PREFIX
from aiproxy.emulator.anthropic import create_anthropic_app
from aiproxy.emulator.config import EmulatorConfig
from aiproxy.emulator.handlers import CONFIG, ERROR_COUNTS, STATS, get_model, list_models, model_action
from aiproxy.emulator.openai import create_openai_app
from aiproxy.emulator.streaming import StreamStats

RECORDED: web.AppKey[deque[dict[str, Any]]] = web.AppKey("emulator_recorded", deque)
TRANSPORTS: web.AppKey[weakref.WeakSet[asyncio.Transport]] = web.AppKey("emulator_transports", weakref.WeakSet)
_HIDDEN_HEADERS = frozenset({"x-goog-api-key", "x-api-key", "authorization"})
# Sub-apps of other wire formats: recorded here, authenticated by their own middleware.
_OWN_AUTH_PREFIXES = ("/openai/", ANTHROPIC_PREFIX + "/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _api_key_error(request: web.Request, expected: str | None) -> errors.GoogleError | None:
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        return errors.missing_key()
    if expected is not None and key != expected:
        return errors.invalid_key()
    return None


@web.middleware
async def gemini_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count, record and authenticate the Gemini routes; the /_emulator routes pass through."""
    if request.path.startswith("/_emulator/"):
        return await handler(request)
    app = request.app
    app[STATS].requests_total += 1
    if request.transport is not None:
        app[TRANSPORTS].add(request.transport)
    recorded = app[RECORDED]
    if recorded.maxlen:
        recorded.append(
            {
                "method": request.method,
                "path": request.path,
                "query": {k: v for k, v in request.query.items() if k != "key"},
                "headers": {k: v for k, v in request.headers.items() if k.lower() not in _HIDDEN_HEADERS},
                "body": await request.read() if request.can_read_body else None,
            }
        )
    if request.path.startswith(_OWN_AUTH_PREFIXES):
        return await handler(request)
    err = _api_key_error(request, app[CONFIG].api_key)
    if err is not None:
        stream_array = request.path.endswith(":streamGenerateContent") and request.query.get("alt") != "sse"
        return err.response(array=stream_array)
    return await handler(request)


def _decoded(entry: dict[str, Any]) -> dict[str, Any]:
    body = entry["body"]
    if isinstance(body, bytes):
        try:
            body = jsonutil.loads(body) if body else None
        except jsonutil.JSONDecodeError:
            body = body.decode(errors="replace")
    return {**entry, "body": body}


async def get_requests(request: web.Request) -> web.Response:
    return web.json_response([_decoded(e) for e in request.app[RECORDED]], dumps=jsonutil.dumps_str)


async def clear_requests(request: web.Request) -> web.Response:
    request.app[RECORDED].clear()
    return web.json_response({"cleared": True})


async def get_stats(request: web.Request) -> web.Response:
    app = request.app
    transports = [*app[TRANSPORTS]]  # a copy: the set shrinks as connections are collected
    open_connections = sum(1 for t in transports if not t.is_closing())
    return web.json_response(
        {
            "requests_total": app[STATS].requests_total,
            "open_streams": app[STATS].open_streams,
            "open_connections": open_connections,
        }
    )


def create_emulator_app(config: EmulatorConfig | None = None) -> web.Application:
    """A fresh emulator (own counters, recordings and error_times state) for ``config``."""
    cfg = config or EmulatorConfig()
    app = web.Application(middlewares=[gemini_middleware], client_max_size=64 * 1024 * 1024)
    app[CONFIG] = cfg
    app[STATS] = StreamStats()
    app[ERROR_COUNTS] = {}
    app[RECORDED] = deque(maxlen=max(0, cfg.record_requests))
    app[TRANSPORTS] = weakref.WeakSet()
    for version in ("v1beta", "v1"):
        app.router.add_get(f"/{version}/models", list_models)
        app.router.add_post(f"/{version}/models/{{action:[^/]+:[A-Za-z]+}}", model_action)
        app.router.add_get(f"/{version}/models/{{model:[^/:]+}}", get_model)
    app.add_subapp("/openai/v1", create_openai_app())
    app.add_subapp(ANTHROPIC_PREFIX, create_anthropic_app(cfg))
    app.router.add_get("/_emulator/requests", get_requests)
    app.router.add_delete("/_emulator/requests", clear_requests)
    app.router.add_get("/_emulator/stats", get_stats)
    return app
