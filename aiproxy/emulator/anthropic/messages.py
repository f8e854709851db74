"""`POST /anthropic/v1/messages`: the answer, buffered or as Anthropic's SSE event sequence.

Scripted like the Gemini emulator with an ``#emu {json}`` directive in any text of the request
(system, text blocks, tool results; the last one wins). Keys, all optional:
- ``reply`` exact text (default: ``words`` filler words), ``chunks`` text deltas;
- ``thinking`` thought text (only when the request enables thinking; default "Let me think.");
  its signature is ``validate.signature_for(text)`` and must come back unchanged;
- ``tool_uses`` [{name, input}]: tool_use blocks after the text, stop_reason ``tool_use``;
- ``stop_reason`` (e.g. ``refusal``, ``max_tokens``, ``stop_sequence``) and ``stop_sequence``;
- ``error`` status (400/401/429/500/529…) with ``message``, ``retry_after`` and ``error_times`` +
  ``key`` (only the first N requests with that key fail);
- ``fail_after`` N: streaming only, an ``error`` event (overloaded_error) after N text deltas;
- ``cache_read`` / ``cache_creation``: input tokens reported as read from / written to the cache.

Tokens follow the emulator's rule (aiproxy/emulator/tokens.py): ceil(len/4) of every text, the
compact JSON of tool inputs, tool definitions and tool results, 258 per image or document.
`input_tokens` is what remains after the cached parts, as the real API reports it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.emulator.anthropic.errors import AnthropicError, invalid, request_id
from aiproxy.emulator.anthropic.validate import signature_for, validate_request
from aiproxy.emulator.config import EmulatorConfig
from aiproxy.emulator.directive import error_due, find_directive
from aiproxy.emulator.tokens import IMAGE_TOKENS, count_tokens, json_tokens

CONFIG: web.AppKey[EmulatorConfig] = web.AppKey("anthropic_emulator_config", EmulatorConfig)
ERROR_COUNTS: web.AppKey[dict[str, int]] = web.AppKey("anthropic_emulator_error_counts", dict)
FILLER = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


def _texts(body: dict[str, Any]) -> list[str]:
    out: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        out.append(system)
    elif isinstance(system, list):
        out.extend(b.get("text", "") for b in system if isinstance(b, dict))
    for msg in body["messages"]:
        content = msg["content"]
        if isinstance(content, str):
            out.append(content)
            continue
        for block in content:
            if block.get("type") == "text":
                out.append(block["text"])
            elif block.get("type") == "tool_result":
                inner = block.get("content")
                out.extend([inner] if isinstance(inner, str) else
                           [b.get("text", "") for b in inner or () if isinstance(b, dict)])
    return out


def input_tokens(body: dict[str, Any]) -> int:
    """The emulator's count of everything the model reads."""
    total = sum(count_tokens(t) for t in _texts(body))
    for msg in body["messages"]:
        for block in msg["content"] if isinstance(msg["content"], list) else ():
            if block["type"] in ("image", "document"):
                total += IMAGE_TOKENS
            elif block["type"] == "tool_use":
                total += json_tokens(block["input"])
            elif block["type"] == "thinking":
                total += count_tokens(block.get("thinking", ""))
    if body.get("tools"):
        total += json_tokens(body["tools"])
    return total


def _check_scripted_error(app: web.Application, d: dict[str, Any]) -> None:
    if error_due(d, app[ERROR_COUNTS]):
        raise AnthropicError(int(d["error"]), d.get("message"), d.get("retry_after"))


def _content(d: dict[str, Any], thinking: bool, cfg: EmulatorConfig) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if thinking:
        thought = str(d.get("thinking", "Let me think."))
        blocks.append({"type": "thinking", "thinking": thought, "signature": signature_for(thought)})
    reply = d.get("reply")
    if reply is None and not d.get("tool_uses"):
        words = int(d.get("words", cfg.words))
        reply = " ".join(FILLER[i % len(FILLER)] for i in range(words))
    if reply:
        blocks.append({"type": "text", "text": str(reply)})
    for call in d.get("tool_uses") or ():
        blocks.append({"type": "tool_use", "id": "toolu_emu" + os.urandom(8).hex(), "name": call["name"],
                       "input": call.get("input", {})})
    return blocks


def _output_tokens(blocks: list[dict[str, Any]]) -> int:
    total = 0
    for b in blocks:
        if b["type"] == "text":
            total += count_tokens(b["text"])
        elif b["type"] == "thinking":
            total += count_tokens(b["thinking"])
        else:
            total += json_tokens(b["input"])
    return max(1, total)


def _usage(body: dict[str, Any], d: dict[str, Any], output: int) -> dict[str, Any]:
    total = input_tokens(body)
    read = min(int(d.get("cache_read", 0)), total)
    creation = min(int(d.get("cache_creation", 0)), total - read)
    return {"input_tokens": total - read - creation, "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read, "output_tokens": output, "service_tier": "standard"}


def _split(text: str, parts: int) -> list[str]:
    if not text:
        return []
    parts = max(1, min(parts, len(text)))
    size = -(-len(text) // parts)
    return [text[i:i + size] for i in range(0, len(text), size)]


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + jsonutil.dumps(data) + b"\n\n"


MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")


async def list_models(request: web.Request) -> web.Response:
    data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"} for m in MODELS]
    return web.json_response({"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]})


async def messages(request: web.Request) -> web.StreamResponse:
    try:
        return await _messages(request)
    except AnthropicError as exc:
        return exc.response()


async def _messages(request: web.Request) -> web.StreamResponse:
    bearer = request.headers.get("Authorization", "")
    key = request.headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else "")
    if not key:
        raise AnthropicError(401, "x-api-key header is required")
    cfg = request.app[CONFIG]
    if cfg.api_key is not None and key != cfg.api_key:
        raise AnthropicError(401, "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        raise invalid("anthropic-version: header is required")
    try:
        body = jsonutil.loads(await request.read())
    except jsonutil.JSONDecodeError:
        raise invalid("There was an issue with your request body: it is not valid JSON") from None
    thinking = validate_request(body)
    d = find_directive(_texts(body))
    _check_scripted_error(request.app, d)
    blocks = _content(d, thinking, cfg)
    stop_reason = d.get("stop_reason") or ("tool_use" if d.get("tool_uses") else "end_turn")
    usage = _usage(body, d, _output_tokens(blocks))
    message = {"id": "msg_emu" + os.urandom(8).hex(), "type": "message", "role": "assistant",
               "model": body["model"], "content": blocks, "stop_reason": stop_reason,
               "stop_sequence": d.get("stop_sequence"), "usage": usage}
    if cfg.delay_ms:
        await asyncio.sleep(cfg.delay_ms / 1000)
    if not body.get("stream"):
        return web.Response(body=jsonutil.dumps(message),
                            headers={"Content-Type": "application/json", "request-id": request_id()})
    return await _stream(request, message, d, cfg)


async def _stream(request: web.Request, message: dict[str, Any], d: dict[str, Any],
                  cfg: EmulatorConfig) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                       "Cache-Control": "no-cache", "request-id": request_id()})
    await resp.prepare(request)
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    await resp.write(_event("message_start", {"type": "message_start", "message": {
        **message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}}))
    chunks = int(d.get("chunks", cfg.chunks))
    fail_after = d.get("fail_after")
    sent = 0
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        start: dict[str, Any]
        deltas: list[dict[str, Any]]
        if kind == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": t} for t in _split(block["text"], chunks)]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": t} for t in _split(block["thinking"], chunks)]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            raw = jsonutil.dumps_str(block["input"])
            start = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": t} for t in _split(raw, 2)]
        await resp.write(_event("content_block_start", {"type": "content_block_start", "index": index,
                                                        "content_block": start}))
        if index == 0:
            await resp.write(_event("ping", {"type": "ping"}))
        for delta in deltas:
            if fail_after is not None and sent >= int(fail_after):
                await resp.write(_event("error", AnthropicError(529).body()))
                return resp
            await resp.write(_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                            "delta": delta}))
            sent += 1
            if cfg.chunk_delay_ms:
                await asyncio.sleep(cfg.chunk_delay_ms / 1000)
        await resp.write(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    await resp.write(_event("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
        "usage": {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                                        "output_tokens")}}))
    await resp.write(_event("message_stop", {"type": "message_stop"}))
    await resp.write_eof()
    return resp
