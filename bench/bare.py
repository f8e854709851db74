"""The bare pass-through: the least a Python aiohttp OpenAI-to-Gemini proxy must do, as a reference.

`python -m bench` runs it as the `bare` target next to the proxy (issue 16): what the proxy adds
over it is what validation, admission, metering, the ledger and logging cost, on the same box,
in the same run. It does only the translation: OpenAI chat messages to Gemini `contents`, one
shared upstream session, Gemini's answer back as one `chat.completion` (buffered, from
`generateContent`) or as one `chat.completion.chunk` event per upstream event (streamed, from
`streamGenerateContent?alt=sse`) and `[DONE]`. No validation beyond reading the body, no auth,
no limits, no ledger, no per-request logging. Meant to be honest, not a straw man: orjson,
uvloop, one `send` per event, the same connector settings as the proxy's upstream session.

    python -m bench.bare --upstream http://127.0.0.1:PORT --api-key KEY [--port 0]

Prints `bare listening on http://127.0.0.1:PORT` once it accepts connections.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.serving import serve_forever

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
API_KEY = web.AppKey("api_key", str)
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


def gemini_body(chat: dict[str, Any]) -> dict[str, Any]:
    """OpenAI messages as Gemini contents: system text to systemInstruction, assistant as model."""
    contents: list[dict[str, Any]] = []
    system: list[dict[str, str]] = []
    for msg in chat.get("messages") or ():
        content = msg.get("content") or ""
        parts = ([{"text": content}] if isinstance(content, str)
                 else [{"text": p.get("text", "")} for p in content if p.get("type") == "text"])
        role = msg.get("role")
        if role in ("system", "developer"):
            system.extend(parts)
        else:
            contents.append({"role": "model" if role == "assistant" else "user", "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    return body


def _text(candidate: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in (candidate.get("content") or {}).get("parts", ())
                   if not p.get("thought"))


def _finish(candidate: dict[str, Any]) -> str | None:
    native = candidate.get("finishReason")
    return None if native is None else _FINISH.get(native, "content_filter")


def _usage(meta: dict[str, Any]) -> dict[str, int]:
    """OpenAI counts thinking as completion tokens; Gemini counts it apart."""
    prompt = meta.get("promptTokenCount", 0)
    completion = meta.get("candidatesTokenCount", 0) + meta.get("thoughtsTokenCount", 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": meta.get("totalTokenCount", prompt + completion)}


def completion(answer: dict[str, Any], model: str, created: int) -> dict[str, Any]:
    """Gemini's generateContent body as one OpenAI chat.completion."""
    cand = (answer.get("candidates") or [{}])[0]
    return {"id": "chatcmpl-" + answer.get("responseId", ""), "object": "chat.completion", "created": created,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": _text(cand)},
                         "finish_reason": _finish(cand) or "stop"}],
            "usage": _usage(answer.get("usageMetadata") or {})}


def chunk(event: dict[str, Any], model: str, created: int, first: bool) -> dict[str, Any]:
    """One Gemini stream event as one OpenAI chat.completion.chunk (role only in the first)."""
    cand = (event.get("candidates") or [{}])[0]
    delta: dict[str, Any] = {"role": "assistant", "content": _text(cand)} if first else {"content": _text(cand)}
    return {"id": "chatcmpl-" + event.get("responseId", ""), "object": "chat.completion.chunk",
            "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": _finish(cand)}]}


def _upstream_error(status: int, text: str) -> web.Response:
    body = {"error": {"message": text[:500], "type": "upstream_error", "code": status}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    chat = orjson.loads(await request.read())
    model = chat.get("model") or ""
    created = int(time.time())
    session, base = request.app[SESSION], request.app[UPSTREAM]
    body = orjson.dumps(gemini_body(chat))
    if not chat.get("stream"):
        async with session.post(f"{base}/v1beta/models/{model}:generateContent", data=body) as up:
            raw = await up.read()
            if up.status != 200:
                return _upstream_error(up.status, raw.decode(errors="replace"))
        return web.Response(body=orjson.dumps(completion(orjson.loads(raw), model, created)),
                            content_type="application/json")
    async with session.post(f"{base}/v1beta/models/{model}:streamGenerateContent?alt=sse", data=body) as up:
        if up.status != 200:
            return _upstream_error(up.status, (await up.read()).decode(errors="replace"))
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        first, pending = True, b""
        async for data in up.content.iter_any():  # one split per network read, not a readline per line
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                if line.startswith(b"data:"):
                    out = chunk(orjson.loads(line[5:]), model, created, first)
                    first = False
                    await resp.write(b"data: " + orjson.dumps(out) + b"\n\n")
    await resp.write_eof(b"data: [DONE]\n\n")
    return resp


async def _session(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60), headers={"x-goog-api-key": app[API_KEY]},
        cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=None))
    yield
    await app[SESSION].close()


def create_app(upstream: str, api_key: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app[API_KEY] = api_key
    app.cleanup_ctx.append(_session)
    app.router.add_post("/v1/chat/completions", chat_completions)
    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="Gemini base URL (the emulator)")
    p.add_argument("--api-key", required=True)
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = p.parse_args(argv)
    # handler_cancellation as in the proxy: a client that leaves ends its upstream stream at once.
    serve_forever("bare", create_app(args.upstream, args.api_key), args.port, handler_cancellation=True)


if __name__ == "__main__":
    main()
