"""POST /v1/chat/completions: one pipeline for both modes, whatever the provider.

The provider (resolved from the model name) always answers as a stream of OpenAI chunks; with
`stream: true` they are written as SSE as they arrive (aiproxy.openai.sse), otherwise the same
chunks are folded into one JSON body (aiproxy.openai.fold). The usage row is committed before
the last byte goes out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.appkeys import (
    ADMISSION_KEY,
    CHAT_REQUEST_KEY,
    CLIENT_REQUEST_ID_KEY,
    METER_KEY,
    METERING_KEY,
    PROVIDERS_KEY,
    REQUEST_ID_KEY,
    RESPONSE_CACHE_KEY,
    SETTINGS_KEY,
)
from aiproxy.billing.estimate import estimate_prompt_tokens
from aiproxy.billing.meter import apply_usage
from aiproxy.billing.record import CLIENT_DISCONNECTED, CONTENT_FILTER, INTERNAL_ERROR, UPSTREAM_ERROR, Metering
from aiproxy.cache.key import answer_shape
from aiproxy.cache.replay import ReplayStream
from aiproxy.errors import ProxyError
from aiproxy.http.hardening import JSON_BODY
from aiproxy.openai import sse
from aiproxy.openai.fold import ChunkFolder
from aiproxy.openai.sse import DONE, SSE_HEADERS
from aiproxy.openai.types import ChatRequest, parse_chat_request
from aiproxy.providers.base import ChatOptions, ChatStream, Chunk, UpstreamStreamError
from aiproxy.providers.router import RoutedCall

log = logging.getLogger("aiproxy.api")


async def read_json(request: web.Request) -> Any:
    if JSON_BODY in request:  # already parsed (and size/depth-checked) by the hardening middleware
        return request[JSON_BODY]
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ProxyError(413, "The request body is too large.", code="request_too_large") from None
    if not raw:
        raise ProxyError(400, "The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return jsonutil.loads(raw)
    except jsonutil.JSONDecodeError:
        raise ProxyError(400, "The request body is not valid JSON.", code="invalid_json") from None


def prompt_chars(req: ChatRequest) -> int:
    """Characters of prompt text, for token estimates (rate limits, and usage when the upstream
    never reports it). Read from the request so it is known before media are fetched."""
    total = 0
    for msg in req.messages:
        content = msg.content
        if isinstance(content, str):
            total += len(content)
        elif content:
            total += sum(len(p.get("text") or "") for p in content if p["type"] == "text")
    return total


def reasoning_as_think_tags(request: web.Request) -> bool:
    """Thoughts as `<think>` in content (the only form Lotti shows): per request or deployment."""
    header = request.headers.get("X-Reasoning-Format")
    if header:
        return header.lower().replace("_", "-") == "think-tags"
    return getattr(request.app[SETTINGS_KEY], "reasoning_format", "field") == "think-tags"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    req = parse_chat_request(await read_json(request))
    req._think_tags = reasoning_as_think_tags(request)
    return await serve_chat(request, req, endpoint="chat", completion_id="chatcmpl-" + os.urandom(12).hex(),
                            respond=_stream if req.stream else _buffered)


Respond = Callable[[web.Request, ChatStream, Metering], Awaitable[web.StreamResponse]]


async def serve_chat(request: web.Request, req: ChatRequest, *, endpoint: str, completion_id: str,
                     respond: Respond) -> web.StreamResponse:
    """Admit, meter and open one chat generation, then let `respond` write it (chat's SSE or
    folded JSON, or another API's shape built from the same chunks, e.g. api/responses.py)."""
    app = request.app
    providers = app[PROVIDERS_KEY]
    candidates, route_alias, strategy = providers.route_chat(req.model)  # 400/404 before anything is spent
    provider, upstream_model = candidates[0].provider, candidates[0].model
    metering = Metering(
        request_id=request[REQUEST_ID_KEY], client_request_id=request.get(CLIENT_REQUEST_ID_KEY),
        user=req.billing_user, requested_model=req.model, endpoint=endpoint,
        upstream_model=upstream_model, provider=provider.name, streamed=req.stream, prompt_chars=prompt_chars(req),
        prompt_estimate=estimate_prompt_tokens(req),  # remote images at a default until fetched
    )
    request[CHAT_REQUEST_KEY] = req
    # Identity, limits, budgets, credits, then remote images inlined (the order: app.py).
    await app[ADMISSION_KEY].admit(request, metering, req.output_limit)
    metering.prompt_estimate = estimate_prompt_tokens(req)  # fetched images counted for real
    # The response cache (aiproxy/cache), after admission: identity known, limits counted. A hit
    # is a stream of the stored answer, written by `respond` exactly as a miss would be.
    # Off (the default), it costs this request one attribute test: no key is built.
    cache = app[RESPONSE_CACHE_KEY]
    plan = (await cache.lookup(request, answer_shape(req), provider.name, upstream_model, metering.user)
            if cache.enabled else None)
    if plan is not None and plan.hit is not None:
        metering.cache_hit = True
        request[METERING_KEY] = metering  # billed (at CACHE_HIT_PRICE_RATIO) however the replay ends
        stream: ChatStream = ReplayStream(plan.hit, completion_id=completion_id, client_model=req.model,
                                          upstream_model=upstream_model, include_usage=req.include_usage)
    else:
        call = providers.open_chat(req, ChatOptions(
            completion_id=completion_id, include_usage=req.include_usage,
            think_tags=req._think_tags, max_tool_calls=1 if req.parallel_tool_calls is False else None,
            stream=req.stream,
        ), candidates, route_alias, strategy)  # a request the provider cannot take is a 400 here, before metering
        stream = await _open_upstream(request, call, metering)
    try:
        return await respond(request, stream, metering)
    except asyncio.CancelledError:
        metering.status = CLIENT_DISCONNECTED
        stream.close()
        settle(metering, stream, complete=False)
        raise
    except Exception:
        if not metering.finished:  # a proxy fault: the error middleware answers 500, the meter bills
            stream.close()
            settle_failure(metering, stream)
        raise
    finally:
        stream.release()


async def _open_upstream(request: web.Request, call: RoutedCall, metering: Metering) -> ChatStream:
    """Send the translated request (retries and fallbacks included); metered from here on."""
    metering.provider, metering.upstream_model = call.first.provider.name, call.first.model  # a strategy's pick

    # From here the upstream may have the prompt: the meter records this request however it
    # ends, a client gone before the first byte included (billed at the prompt estimate).
    request[METERING_KEY] = metering
    try:
        stream = await call.open()
    except ProxyError:
        del request[METERING_KEY]  # the upstream answered with an error status: it generated nothing
        raise
    except asyncio.CancelledError:
        metering.status = CLIENT_DISCONNECTED
        apply_usage(metering, None, complete=False)
        raise
    # What served: a fallback (on this or another provider) when the first had no capacity.
    metering.provider, metering.upstream_model = call.provider, stream.model
    return stream


def settle(m: Metering, stream: ChatStream, complete: bool) -> None:
    m.output_chars = stream.output_chars
    apply_usage(m, stream.usage(), complete)


async def bill_broken_upstream(request: web.Request, stream: ChatStream, m: Metering) -> None:
    """The upstream stream broke after it started: record what it spent, as an upstream error."""
    m.status = UPSTREAM_ERROR
    settle(m, stream, complete=False)
    await request.app[METER_KEY].finish(m)


def bill_client_gone(stream: ChatStream, m: Metering) -> None:
    """The client hung up mid-stream: stop the upstream; the metering middleware records the row."""
    m.status = CLIENT_DISCONNECTED
    stream.close()
    settle(m, stream, complete=False)


def settle_failure(m: Metering, stream: ChatStream) -> None:
    """After an unexpected exception: what the upstream reported so far, else the estimate; never $0/ok."""
    m.status = INTERNAL_ERROR
    try:
        settle(m, stream, complete=False)
    except Exception:  # noqa: BLE001 - the usage itself was what failed: fall back to the estimates
        apply_usage(m, None, complete=False)


def final_status(chunks: list[Chunk]) -> str:
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice.get("finish_reason") == "content_filter":
                return CONTENT_FILTER
    return "ok"


async def _stream(request: web.Request, stream: ChatStream, m: Metering) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers=SSE_HEADERS)
    encode = sse.encode
    cache = request.app[RESPONSE_CACHE_KEY]
    folder = ChunkFolder() if cache.enabled and cache.wants_chunks(request) else None  # to store once complete
    try:
        await resp.prepare(request)
        async for out in stream:  # per chunk: the provider's translation, then this one write
            if m.first_token_at is None:
                m.first_token_at = time.monotonic()
            if folder is not None:
                for chunk in out:
                    folder.add(chunk)
            await resp.write(encode(out))
    except UpstreamStreamError as exc:
        await bill_broken_upstream(request, stream, m)
        await resp.write(sse.error_and_done(
            ProxyError(exc.status, exc.message, type="api_error", code=exc.code).body()))
        await resp.write_eof()
        return resp
    except (ConnectionResetError, ConnectionError):
        bill_client_gone(stream, m)
        return resp
    except Exception:
        if not resp.prepared:
            raise  # nothing sent yet: the handler bills it and the client gets a 500 JSON
        return await _end_stream_after_fault(request, resp, stream, m)
    try:
        final = stream.finish()
        m.status = final_status(final)
        settle(m, stream, complete=True)
    except Exception:  # noqa: BLE001 - a proxy fault at the end: bill what was spent, end the stream
        return await _end_stream_after_fault(request, resp, stream, m)
    await request.app[METER_KEY].finish(m)  # committed before the last byte
    if folder is not None:
        for chunk in final:
            folder.add(chunk)
        await cache.remember(request, m, folder.result())
    # The closing chunks, [DONE] and the chunked terminator leave in one send.
    await resp.write_eof(encode(final) + DONE)
    return resp


async def _end_stream_after_fault(request: web.Request, resp: web.StreamResponse, stream: ChatStream,
                                  m: Metering) -> web.StreamResponse:
    """A started stream hit a proxy fault: bill what the upstream spent, then an error event and [DONE]."""
    log.exception("chat stream failed after the upstream started (request %s)", m.request_id)
    stream.close()
    if not m.finished:
        settle_failure(m, stream)
        await request.app[METER_KEY].finish(m)
    error = ProxyError(500, "The server had an error while processing your request.", type="server_error",
                       code=INTERNAL_ERROR).body()
    try:
        await resp.write(sse.error_and_done(error))
        await resp.write_eof()
    except Exception:  # noqa: BLE001 - the connection itself is broken: nothing more can reach the client
        pass
    return resp


async def read_all(request: web.Request, stream: ChatStream, m: Metering, add: Callable[[Chunk], Any]) -> None:
    """Every chunk of a buffered answer into `add`; a broken upstream is billed, then a ProxyError."""
    try:
        async for out in stream:
            if m.first_token_at is None:
                m.first_token_at = time.monotonic()
            for chunk in out:
                add(chunk)
    except UpstreamStreamError as exc:
        await bill_broken_upstream(request, stream, m)
        raise ProxyError(exc.status, exc.message, type="api_error", code=exc.code) from None


async def _buffered(request: web.Request, stream: ChatStream, m: Metering) -> web.StreamResponse:
    folder = ChunkFolder()
    await read_all(request, stream, m, folder.add)
    final = stream.finish()
    for chunk in final:
        folder.add(chunk)
    m.status = final_status(final)
    settle(m, stream, complete=True)
    await request.app[METER_KEY].finish(m)
    body = folder.result()
    cache = request.app[RESPONSE_CACHE_KEY]
    if cache.enabled:
        await cache.remember(request, m, body)
    return web.Response(body=jsonutil.dumps(body), content_type="application/json")
