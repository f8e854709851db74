"""The OpenAI sub-app: Bearer auth, the three routes, OpenAI's error JSON for every failure.

Mounted by aiproxy/emulator/app.py at `/openai/v1`; it shares the parent's config (key,
default reply length), request recording and `error_times` tallies through `config_dict`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.emulator.directive import find_directive, scripted_status
from aiproxy.emulator.handlers import CONFIG, ERROR_COUNTS
from aiproxy.emulator.openai import errors
from aiproxy.emulator.openai.chat import (
    build_answer,
    message_texts,
    new_completion_id,
    parse_chat,
    render_chunks,
    render_completion,
    write_sse,
)
from aiproxy.emulator.openai.embeddings import embed, embedding_inputs
from aiproxy.emulator.openai.models import all_models

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer auth first, then any OpenAIError raised by a handler as OpenAI's error JSON."""
    expected = request.config_dict[CONFIG].api_key
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return errors.missing_key().response()
    if expected is not None and key.strip() != expected:
        return errors.invalid_key(key.strip()).response()
    try:
        return await handler(request)
    except errors.OpenAIError as exc:
        return exc.response()


async def _json_body(request: web.Request) -> Any:
    try:
        return jsonutil.loads(await request.read() or b"null")
    except jsonutil.JSONDecodeError:
        raise errors.invalid("We could not parse the JSON body of your request. (HINT: This likely means you "
                             "aren't using your HTTP library correctly.)") from None


def _scripted(request: web.Request, d: dict[str, Any]) -> None:
    status = scripted_status(request.config_dict[ERROR_COUNTS], d)
    if status is not None:
        raise errors.scripted(status, d.get("retry_after"), d.get("message"))


def _json(obj: Any) -> web.Response:
    return web.Response(body=jsonutil.dumps(obj), content_type="application/json")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = parse_chat(await _json_body(request))
    d = find_directive(message_texts(body["messages"]))
    _scripted(request, d)
    cfg = request.config_dict[CONFIG]
    answer = build_answer(body, d, cfg)
    delay = float(d.get("delay_ms", cfg.delay_ms)) / 1000
    if delay > 0:
        await asyncio.sleep(delay)
    completion_id, created = new_completion_id()
    if not body.get("stream"):
        return _json(render_completion(answer, completion_id, created))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return await write_sse(request, render_chunks(answer, completion_id, created, include_usage), d)


async def embeddings(request: web.Request) -> web.Response:
    body = await _json_body(request)
    texts = embedding_inputs(body)
    _scripted(request, find_directive(texts))
    return _json(embed(body, texts))


async def list_models(_request: web.Request) -> web.Response:
    return _json({"object": "list", "data": all_models()})


def create_openai_app() -> web.Application:
    app = web.Application(middlewares=[openai_errors])
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_post("/embeddings", embeddings)
    app.router.add_get("/models", list_models)
    return app
