"""`POST /openai/v1/chat/completions`: validate like OpenAI, answer buffered or as OpenAI's SSE.

Directive keys read here (`#emu {json}` in any message text; the last one wins):
- ``reply`` exact text, ``words`` (default from the config), ``chunks`` content pieces;
- ``function_calls`` [{name, args}] (+ ``text`` before them): tool calls with `call_…` ids and
  indices 0..n-1, finish_reason ``tool_calls``;
- ``finish`` another finish_reason (``length``, ``content_filter``);
- ``reasoning_tokens`` (part of completion_tokens), ``cached_tokens`` (part of prompt_tokens);
- ``no_usage``: no usage anywhere (an OpenAI-compatible server that never reports it);
- ``error`` (+ ``retry_after``, ``message``, ``error_times`` + ``key``) as the Gemini emulator;
- ``fail_after`` N + ``fail_mode`` reset | truncate: a stream cut after N chunks (no [DONE]).

Tokens: prompt = ceil(len/4) per message text, plus the compact JSON of tool calls and tools;
completion = ceil(len/4) of the answer text plus each call's arguments, plus reasoning tokens.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.emulator.config import EmulatorConfig
from aiproxy.emulator.openai import errors
from aiproxy.emulator.openai.models import CHAT_MODELS
from aiproxy.emulator.reply import pseudo_words, split_pieces
from aiproxy.emulator.tokens import count_tokens, json_tokens

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
FINGERPRINT = "fp_emu0001"


@dataclass
class Answer:
    """What one request is answered with, before it is rendered in either mode."""

    model: str
    text: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish: str = "stop"
    usage: dict[str, Any] | None = None
    pieces: int = 3


def message_texts(messages: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return out


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        raise errors.invalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list):
        raise errors.invalid("Invalid type for 'messages': expected an array of objects.", "messages",
                             "invalid_type")
    if not messages:
        raise errors.invalid("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                             "empty array instead.", "messages", "empty_array")
    open_calls: set[Any] = set()
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise errors.invalid(f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role", "invalid_value")
        if msg["role"] == "assistant":
            open_calls = {c.get("id") for c in msg.get("tool_calls") or () if isinstance(c, dict)}
        elif msg["role"] == "tool":
            if msg.get("tool_call_id") not in open_calls:
                raise errors.invalid("Invalid parameter: messages with role 'tool' must be a response to a "
                                     "preceeding message with 'tool_calls'.", f"messages.[{i}].role")
        else:
            open_calls = set()
    return messages


def prompt_tokens(body: dict[str, Any]) -> int:
    total = sum(count_tokens(t) for t in message_texts(body["messages"]))
    for msg in body["messages"]:
        if msg.get("tool_calls"):
            total += json_tokens(msg["tool_calls"])
    if body.get("tools"):
        total += json_tokens(body["tools"])
    return total


def _call_id(seed: bytes, index: int) -> str:
    return "call_" + hashlib.blake2b(seed + index.to_bytes(2, "big"), digest_size=12).hexdigest()


def build_answer(body: dict[str, Any], d: dict[str, Any], cfg: EmulatorConfig) -> Answer:
    model = body["model"]
    seed = jsonutil.dumps(body["messages"])
    calls = d.get("function_calls") or []
    if calls:
        text = d.get("text")
    elif "reply" in d:
        text = str(d["reply"])
    else:
        text = " ".join(pseudo_words(seed, int(d.get("words", cfg.words)), 0))
    tool_calls: list[dict[str, Any]] = [{"id": _call_id(seed, i), "type": "function",
                   "function": {"name": c["name"], "arguments": jsonutil.dumps(c.get("args", {})).decode()}}
                  for i, c in enumerate(calls)]
    finish = str(d.get("finish") or ("tool_calls" if tool_calls else "stop"))
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if text and isinstance(limit, int) and count_tokens(text) > limit:
        text, finish = text[: limit * 4], "length"
    reasoning = int(d.get("reasoning_tokens", 0))
    completion = count_tokens(text or "") + sum(count_tokens(c["function"]["arguments"]) for c in tool_calls)
    prompt = prompt_tokens(body)
    usage = None if d.get("no_usage") else {
        "prompt_tokens": prompt,
        "completion_tokens": completion + reasoning,
        "total_tokens": prompt + completion + reasoning,
        "prompt_tokens_details": {"cached_tokens": min(prompt, int(d.get("cached_tokens", 0))), "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }
    served = model if model.startswith("llama") else f"{model}-2025-04-14"
    return Answer(served, text, tool_calls, finish, usage, max(1, int(d.get("chunks", cfg.chunks))))


def render_completion(a: Answer, completion_id: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": a.text, "refusal": None, "annotations": []}
    if a.tool_calls:
        message["tool_calls"] = a.tool_calls
    out: dict[str, Any] = {
        "id": completion_id, "object": "chat.completion", "created": created, "model": a.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": a.finish}],
        "service_tier": "default", "system_fingerprint": FINGERPRINT,
    }
    if a.usage is not None:
        out["usage"] = a.usage
    return out


def render_chunks(a: Answer, completion_id: str, created: int, include_usage: bool) -> list[dict[str, Any]]:
    """The chunks OpenAI streams for `a`, in order (without the closing `[DONE]`)."""
    with_usage = include_usage and a.usage is not None
    chunks: list[dict[str, Any]] = []

    def chunk(choices: list[dict[str, Any]]) -> None:
        c: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                             "model": a.model, "service_tier": "default", "system_fingerprint": FINGERPRINT,
                             "choices": choices}
        if with_usage:
            c["usage"] = None
        chunks.append(c)

    def delta(d: dict[str, Any], finish: str | None = None) -> None:
        chunk([{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}])

    first: dict[str, Any] = {"role": "assistant", "content": "" if a.text is not None else None, "refusal": None}
    delta(first)
    for piece in split_pieces(a.text, a.pieces) if a.text else ():
        if piece:
            delta({"content": piece})
    for index, call in enumerate(a.tool_calls):
        args = call["function"]["arguments"]
        delta({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                               "function": {"name": call["function"]["name"], "arguments": ""}}]})
        half = len(args) // 2
        for part in (args[:half], args[half:]):
            if part:
                delta({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    delta({}, a.finish)
    if with_usage:
        chunks.append({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": a.model,
                       "service_tier": "default", "system_fingerprint": FINGERPRINT, "choices": [],
                       "usage": a.usage})
    return chunks


def parse_chat(body: Any) -> dict[str, Any]:
    """The body when OpenAI would accept it, else the 400/404 it would answer."""
    if not isinstance(body, dict):
        raise errors.invalid("We could not parse the JSON body of your request.")
    model = body.get("model")
    if not model:
        raise errors.invalid("you must provide a model parameter")
    _check_messages(body.get("messages"))
    if not isinstance(model, str) or model not in CHAT_MODELS:
        raise errors.model_not_found(str(model))
    if body.get("stream_options") is not None and not body.get("stream"):
        raise errors.invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                             "stream_options")
    return body


async def write_sse(request: web.Request, chunks: list[dict[str, Any]], d: dict[str, Any]) -> web.StreamResponse:
    """`data: {json}\\n\\n` per chunk, then `data: [DONE]`; `fail_after` cuts it short."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await resp.prepare(request)
    cut = int(d["fail_after"]) if "fail_after" in d else None
    for i, c in enumerate(chunks):
        if cut is not None and i >= cut:
            if d.get("fail_mode") == "reset" and request.transport is not None:
                request.transport.abort()
                return resp
            await resp.write_eof()
            return resp
        await resp.write(b"data: " + jsonutil.dumps(c) + b"\n\n")
    await resp.write_eof(b"data: [DONE]\n\n")
    return resp


def new_completion_id() -> tuple[str, int]:
    return "chatcmpl-" + hashlib.blake2b(str(time.time_ns()).encode(), digest_size=12).hexdigest(), int(time.time())
