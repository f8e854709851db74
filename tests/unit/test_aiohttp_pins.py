"""aiohttp APIs aiproxy relies on that aiohttp does not document as extension points (issue 11 item 9).

Each test pins one use: it asserts the name still exists in the shape we use AND that using it
still has the effect we rely on, so an aiohttp upgrade that moves it fails here, loudly, instead of
silently dropping a protection. Uses replaced by documented APIs (`TCPSite.port` instead of
`site._server`, our own listeners instead of swapping `runner._server`, an explicit `Server` header
instead of patching `web_response.SERVER_SOFTWARE`) need no pin.

1. upstream.py: `resp.connection.protocol.read_timeout` (setter) and `.start_timeout()` switch the
   socket read timeout from the first-byte wait to the idle gap once Gemini's headers arrived.
2. parse_errors.py / listen.py: `web.RequestHandler(server, loop=..., **handler_args)` as the
   protocol, with `handle_error` overridden (the wire-level effect is tests/access/test_parse_errors.py).
"""

from __future__ import annotations

import asyncio
import inspect
import time

from aiohttp import web
from aiohttp.client_proto import ResponseHandler
from aiohttp.test_utils import TestServer

from aiproxy.providers.gemini.client import GeminiClient
from aiproxy.server.parse_errors import JsonErrorRequestHandler


def test_response_handler_read_timeout_is_a_settable_property_with_start_timeout() -> None:
    prop = inspect.getattr_static(ResponseHandler, "read_timeout")
    assert isinstance(prop, property) and prop.fset is not None
    assert callable(ResponseHandler.start_timeout)


async def test_idle_timeout_replaces_the_first_byte_timeout_after_the_headers() -> None:
    """First byte may take 30 s, but a 0.2 s silence mid-stream ends the read: the swap took effect."""
    async def stalls_mid_stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"candidates": []}\n\n')
        await asyncio.sleep(10)
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stalls_mid_stream)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = GeminiClient(str(server.make_url("")), "k", first_byte_timeout=30, idle_timeout=0.2)
    await client.start()
    try:
        stream = await client.stream_generate("gemini-2.5-pro", b"{}")
        started = time.monotonic()
        try:
            async for _ in stream:
                pass
        except Exception as exc:  # noqa: BLE001 - whichever error the stream maps the socket timeout to
            assert time.monotonic() - started < 5, exc
        else:
            raise AssertionError("the stalled stream ended without an error")
        finally:
            stream.release()
    finally:
        await client.close()
        await server.close()


def test_request_handler_takes_our_constructor_arguments_and_handle_error() -> None:
    params = inspect.signature(web.RequestHandler.__init__).parameters
    for name in ("manager", "loop", "keepalive_timeout", "access_log", "max_line_size", "max_field_size",
                 "max_headers"):
        assert name in params, name
    assert list(inspect.signature(web.RequestHandler.handle_error).parameters) == [
        "self", "request", "status", "exc", "message"]
    assert JsonErrorRequestHandler.handle_error is not web.RequestHandler.handle_error
