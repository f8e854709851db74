"""Write a stream (or generateContent's one body) the way Google does, and misbehave on request
(for the proxy's failure tests).

``alt=sse``: each chunk is one ``data: {json}\\r\\n\\r\\n`` event. Without it: one JSON array
streamed as ``[{...}`` then ``,\\r\\n{...}`` per chunk and a closing ``]``. Each chunk is one
``write`` call. ``open_streams`` is decremented in ``finally``, so a client that walks away
mid-stream still brings it back to zero. generateContent's body fails in the same modes, after
its status line (`write_body`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from aiproxy import jsonutil
from aiproxy.emulator.errors import GoogleError

STALL_SECONDS = 300.0
FAIL_MODES = frozenset({"reset", "error_event", "truncate", "malformed", "stall"})
JSON_TYPE = "application/json; charset=UTF-8"


class StreamStats:
    """Counters read by ``GET /_emulator/stats``."""

    __slots__ = ("open_streams", "requests_total")

    def __init__(self) -> None:
        self.open_streams = 0
        self.requests_total = 0


def _frame(payload: bytes, sse: bool, first: bool) -> bytes:
    if sse:
        return b"data: " + payload + b"\r\n\r\n"
    return (b"[" if first else b",\r\n") + payload


async def write_stream(
    request: web.Request,
    events: list[dict[str, Any]],
    *,
    sse: bool,
    stats: StreamStats,
    chunk_delay: float,
    directive: dict[str, Any],
) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.headers["Content-Type"] = "text/event-stream" if sse else JSON_TYPE
    fail_mode = _fail_mode(directive)
    send = len(events)
    if fail_mode in FAIL_MODES:
        send = max(0, min(int(directive["fail_after"]), len(events) - 1))
    stats.open_streams += 1
    try:
        await resp.prepare(request)
        for i in range(send):
            if i and chunk_delay:
                await asyncio.sleep(chunk_delay)
            frame = _frame(jsonutil.dumps(events[i]), sse, i == 0)
            if not sse and fail_mode is None and i == send - 1:
                frame += b"]"
            await resp.write(frame)
        if fail_mode is not None:
            await _fail(request, resp, fail_mode, directive, sse, first=send == 0)
            return resp
        if not sse and send == 0:
            await resp.write(b"[]")
        await resp.write_eof()
        return resp
    finally:
        stats.open_streams -= 1


def _fail_mode(directive: dict[str, Any]) -> str | None:
    return directive.get("fail_mode") if "fail_after" in directive else None


async def write_body(
    request: web.Request, body: dict[str, Any], *, stats: StreamStats, directive: dict[str, Any]
) -> web.StreamResponse:
    """generateContent's answer: one JSON body, or the directive's ``fail_mode`` after the status
    line (``fail_after`` is only the switch here): reset and truncate cut the body halfway (the
    connection aborted, or ended cleanly), malformed sends ``{not json``, error_event an error
    object under status 200, stall the headers and then nothing."""
    payload = jsonutil.dumps(body)
    mode = _fail_mode(directive)
    if mode not in FAIL_MODES:
        return web.Response(body=payload, headers={"Content-Type": JSON_TYPE})
    resp = web.StreamResponse(status=200, headers={"Content-Type": JSON_TYPE})
    stats.open_streams += 1
    try:
        await resp.prepare(request)
        if mode in ("reset", "truncate"):
            await resp.write(payload[: len(payload) // 2])
        if mode in ("reset", "stall"):
            await _cut_or_stall(request, mode)
            return resp
        if mode == "error_event":
            await resp.write(jsonutil.dumps(GoogleError(int(directive.get("fail_status", 500))).body()))
        elif mode == "malformed":
            await resp.write(b"{not json")
        await resp.write_eof()
        return resp
    finally:
        stats.open_streams -= 1


async def _cut_or_stall(request: web.Request, mode: str) -> None:
    """reset: abort the connection; stall: send nothing more until the client leaves."""
    if mode == "reset":
        if request.transport is not None:
            request.transport.abort()
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STALL_SECONDS
    while loop.time() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.05)


async def _fail(
    request: web.Request, resp: web.StreamResponse, mode: str, d: dict[str, Any], sse: bool, first: bool
) -> None:
    if mode in ("reset", "stall"):
        await _cut_or_stall(request, mode)
        return
    if mode == "error_event":
        body = jsonutil.dumps(GoogleError(int(d.get("fail_status", 500))).body())
        await resp.write(_frame(body, sse, first) + (b"" if sse else b"]"))
    elif mode == "malformed":
        await resp.write(b"data: {not json\r\n\r\n" if sse else (b"[" if first else b",\r\n") + b"{not json")
    elif mode == "truncate" and not sse and first:
        await resp.write(b"[")
    await resp.write_eof()
