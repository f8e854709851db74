"""Requests aiohttp's parser rejects (issue 11 item 5) are answered as OpenAI JSON with nothing echoed.

This also pins aiproxy.server.parse_errors to aiohttp: if an upgrade stops routing parser errors through
`web.RequestHandler.handle_error`, these tests fail instead of the text/plain echo coming back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiproxy import jsonutil
from aiproxy.app import create_app
from aiproxy.server.listen import ServingRunner
from aiproxy.server.serve import _serve
from tests.conftest import emulator_url, make_settings

FAKE_KEY = b"sk-live-FAKE0123456789secret"

BAD_REQUESTS = {
    "control byte in a header value": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + FAKE_KEY
                                      + b"\x01\r\n\r\n",
    "space before the colon": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer " + FAKE_KEY + b"\r\n\r\n",
    "header line too long": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + FAKE_KEY + b"a" * 9000 + b"\r\n\r\n",
    "bad chunked framing": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           b"Authorization: Bearer " + FAKE_KEY + b"\r\n\r\nzz\r\n" + FAKE_KEY + b"\r\n",
    "not HTTP at all": FAKE_KEY + b" / HTTP/1.1\r\n\r\n",
}


@pytest.fixture
async def port(emulator: Any) -> AsyncIterator[int]:
    runner: ServingRunner = await _serve(create_app(make_settings(emulator_url(emulator))), "127.0.0.1", 0)
    yield runner.port
    await runner.cleanup()


@pytest.mark.parametrize("raw", BAD_REQUESTS.values(), ids=list(BAD_REQUESTS))
async def test_parser_error_is_json_without_echo(port: int, raw: bytes, caplog: Any) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    try:
        reply = await asyncio.wait_for(reader.read(), 10)  # the connection is closed after the answer
    finally:
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500
    assert b"\r\nContent-Type: application/json" in head and b"\r\nServer: aiproxy\r\n" in head
    error = jsonutil.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert b"FAKE" not in reply and b"aiohttp" not in reply
    assert "FAKE" not in caplog.text  # the log names the exception type, never the rejected bytes
