"""POST /v1/responses (and GET/DELETE /v1/responses/{id}): OpenAI's Responses API on the chat pipeline.

The request is translated once into the internal chat form (aiproxy/responses/request.py) and
served by the chat handler's own admission, metering and provider call (`api.chat.serve_chat`),
with endpoint `responses` on its ledger row. Only the answer's shape differs: the chat chunks are
built into Responses output items and events (aiproxy/responses/output.py), written as named SSE
events or as one JSON object. With `store` (OpenAI's default) the conversation is kept in the
ledger database (aiproxy/responses/store.py) for `previous_response_id` and the GET/DELETE routes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.access.auth import KEY_RECORD
from aiproxy.api.chat import (
    bill_broken_upstream,
    bill_client_gone,
    read_all,
    read_json,
    serve_chat,
    settle,
    settle_failure,
)
from aiproxy.appkeys import LEDGER_KEY, METER_KEY, RESPONSE_CACHE_KEY, SETTINGS_KEY, STATE_KEY
from aiproxy.billing.record import CONTENT_FILTER, INTERNAL_ERROR, OK, Metering
from aiproxy.errors import ProxyError
from aiproxy.openai.fold import ChunkFolder
from aiproxy.openai.sse import SSE_HEADERS
from aiproxy.providers.base import ChatStream, UpstreamStreamError
from aiproxy.responses.output import Event, ResponseBuilder, new_id
from aiproxy.responses.references import resolve_references
from aiproxy.responses.request import ResponsesRequest, input_items, parse_responses_request, to_chat_request
from aiproxy.responses.store import ResponseStore, SqlTarget, StoredResponse

log = logging.getLogger("aiproxy.api")


def _owner(request: web.Request) -> str | None:
    """Whose stored responses a caller may read: the key's user; None without keys (ids are unguessable)."""
    rec = request.get(KEY_RECORD)
    return rec.user if rec is not None else None


def _store(request: web.Request) -> ResponseStore:
    """The app's store over its ledger's database, made on first use (kept in the app's state)."""
    state = request.app[STATE_KEY]
    store: ResponseStore | None = state.get("response_store")
    if store is None:
        settings = request.app[SETTINGS_KEY]
        store = state["response_store"] = ResponseStore(
            cast(SqlTarget, request.app[LEDGER_KEY]), max_age_days=settings.responses_store_days,
            max_per_user=settings.responses_store_max_per_user)
    return store


def _not_found(response_id: str) -> ProxyError:
    return ProxyError(404, f"Response with id '{response_id}' not found.", type="invalid_request_error",
                      param="response_id", code="not_found")


async def create_response(request: web.Request) -> web.StreamResponse:
    req = parse_responses_request(await read_json(request))
    history: list[dict[str, Any]] = []
    if req.previous_response_id is not None:
        previous = await _store(request).get(req.previous_response_id, _owner(request))
        if previous is None:
            raise ProxyError(400, f"Previous response with id '{req.previous_response_id}' not found.",
                             param="previous_response_id", code="previous_response_not_found")
        history = previous.items
    items = history + await resolve_references(input_items(req), _store(request), _owner(request))
    chat = to_chat_request(req, items)
    response_id = new_id("resp")

    async def respond(request: web.Request, stream: ChatStream, m: Metering) -> web.StreamResponse:
        # A miss the response cache will keep also folds the chat answer (a hit is replayed into this same builder).
        answer = ChunkFolder() if request.app[RESPONSE_CACHE_KEY].wants_chunks(request) else None
        builder = ResponseBuilder(req, response_id, req.model, answer)
        if req.stream:
            return await _stream(request, stream, m, builder, items)
        return await _buffered(request, stream, m, builder, items)

    return await serve_chat(request, chat, endpoint="responses", completion_id="chatcmpl-" + response_id[5:29],
                            respond=respond)


def _status(builder: ResponseBuilder) -> str:
    return CONTENT_FILTER if builder.finish_reason == "content_filter" else OK


async def _finish(request: web.Request, req: ResponsesRequest, stream: ChatStream, m: Metering,
                  builder: ResponseBuilder, items: list[dict[str, Any]]) -> list[Event]:
    """Close the response, meter it and store it; the closing events, for a stream."""
    for chunk in stream.finish():
        builder.add(chunk)
    m.status = _status(builder)
    settle(m, stream, complete=True)
    events = builder.finish(m)
    await request.app[METER_KEY].finish(m)
    if builder.answer is not None:
        await request.app[RESPONSE_CACHE_KEY].remember(request, m, builder.answer.result())
    if req.store:
        try:
            await _store(request).save(StoredResponse(
                id=builder.response["id"], user=m.user, created_at=builder.response["created_at"],
                items=items + builder.response["output"], response=builder.response))
        except Exception:
            log.exception("could not store response %s (request %s)", builder.response["id"], m.request_id)
    return events


async def _buffered(request: web.Request, stream: ChatStream, m: Metering, builder: ResponseBuilder,
                    items: list[dict[str, Any]]) -> web.StreamResponse:
    await read_all(request, stream, m, builder.add)
    await _finish(request, builder.req, stream, m, builder, items)
    return web.Response(body=jsonutil.dumps(builder.response), content_type="application/json")


def encode_events(events: list[Event]) -> bytes:
    """Named SSE events, as OpenAI sends them (`event:` then `data:`; no `[DONE]`)."""
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + jsonutil.dumps(e) + b"\n\n" for e in events)


async def _stream(request: web.Request, stream: ChatStream, m: Metering, builder: ResponseBuilder,
                  items: list[dict[str, Any]]) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await resp.prepare(request)
    try:
        await resp.write(encode_events(builder.start()))
        async for out in stream:
            if m.first_token_at is None:
                m.first_token_at = time.monotonic()
            events: list[Event] = []
            for chunk in out:
                events += builder.add(chunk)
            if events:
                await resp.write(encode_events(events))
        closing = await _finish(request, builder.req, stream, m, builder, items)
    except UpstreamStreamError as exc:
        await bill_broken_upstream(request, stream, m)
        closing = builder.fail(exc.code, exc.message)
    except (ConnectionResetError, ConnectionError):
        bill_client_gone(stream, m)
        return resp
    except Exception:
        log.exception("responses stream failed after it started (request %s)", m.request_id)
        stream.close()
        if not m.finished:
            settle_failure(m, stream)
            await request.app[METER_KEY].finish(m)
        closing = builder.fail(INTERNAL_ERROR, "The server had an error while processing your request.")
    await resp.write_eof(encode_events(closing))
    return resp


async def get_response(request: web.Request) -> web.StreamResponse:
    response_id = request.match_info["response_id"]
    stored = await _store(request).get(response_id, _owner(request))
    if stored is None:
        raise _not_found(response_id)
    return web.Response(body=jsonutil.dumps(stored.response), content_type="application/json")


async def delete_response(request: web.Request) -> web.StreamResponse:
    response_id = request.match_info["response_id"]
    if not await _store(request).delete(response_id, _owner(request)):
        raise _not_found(response_id)
    body = {"id": response_id, "object": "response.deleted", "deleted": True}
    return web.Response(body=jsonutil.dumps(body), content_type="application/json")
