"""Open connections are capped: one past the cap gets a 503 at once and is closed."""

from __future__ import annotations

import asyncio
from typing import Any

from aiproxy import jsonutil
from aiproxy.app import create_app
from aiproxy.server.serve import _serve, bound_port
from tests.conftest import emulator_url, make_settings


async def test_connection_past_the_cap_gets_503_and_is_closed(emulator: Any) -> None:
    settings = make_settings(emulator_url(emulator), max_connections=2)
    runner = await _serve(create_app(settings), "127.0.0.1", 0)
    port = bound_port(runner)
    held = []
    try:
        for _ in range(2):  # two idle keep-alive connections fill the cap
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.readuntil(b'{"status":"healthy"}')
            held.append(writer)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        reply = await asyncio.wait_for(reader.read(), 5)  # read() returns at EOF: the server closed it
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ")
        assert jsonutil.loads(body)["error"]["code"] == "too_many_connections"
        writer.close()
        held.pop().close()  # a slot frees up: new connections are served again
        assert await _health_status(port) == b"200"
    finally:
        for w in held:
            w.close()
        await runner.cleanup()


async def _health_status(port: int) -> bytes:
    """Status of GET /health, polling until the server has noticed the freed connection."""
    status = b""
    for _ in range(100):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status = (await asyncio.wait_for(reader.read(), 5)).split(b" ", 2)[1]
        writer.close()
        if status == b"200":
            break
        await asyncio.sleep(0.01)
    return status
