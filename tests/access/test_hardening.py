"""Hostile input: size, depth, count, headers, slow clients, floods; headers on every response; CORS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.app import create_app
from aiproxy.http.hardening import server_limits
from tests.access.conftest import chat_body, scripted
from tests.conftest import emulator_url, make_settings

SECURITY = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


@pytest.fixture
async def limited_proxy(emulator: TestServer) -> AsyncIterator[Any]:
    """A proxy started with the server limits the real server uses (header sizes, idle timeout)."""
    servers: list[TestServer] = []

    async def start(**overrides: Any) -> TestServer:
        settings = make_settings(emulator_url(emulator), **overrides)
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server(**server_limits(settings))
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


async def raw_exchange(server: Any, data: bytes) -> bytes:
    """Send raw bytes, return the one response (headers and Content-Length body) the server sends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data)
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return head + await asyncio.wait_for(reader.readexactly(length), timeout=30)
    finally:
        writer.close()


def assert_security_headers(headers: Any, cache: str = "no-store") -> None:
    for name, value in SECURITY.items():
        assert headers[name] == value
    assert headers["Cache-Control"] == cache
    assert headers["Server"] == "aiproxy"


async def test_body_over_the_limit_is_413_before_reading(proxy_factory: Any) -> None:
    proxy = await proxy_factory(max_body_bytes=4096)
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n")
    reply = await raw_exchange(proxy, head + b"{")  # 100 MB announced, 1 byte sent: no waiting for the rest
    status, _, rest = reply.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"Connection: close" in rest
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "request_too_large" and "4096 bytes" in body["error"]["message"]


async def test_chunked_body_over_the_limit_is_413(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(max_body_bytes=4096)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    async with http.post(proxy.make_url("/v1/chat/completions"), data=chunks()) as resp:
        assert resp.status == 413 and (await resp.json())["error"]["code"] == "request_too_large"


async def test_default_body_limit_fits_large_images(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory()
    image = "data:image/jpeg;base64," + "A" * (12 * 1024 * 1024)  # a 9 MB photo, base64
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": image}}]}]}
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body) as resp:
        assert resp.status != 413


async def test_deep_json_is_400(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory()
    deep: Any = "x"
    for _ in range(500):
        deep = {"a": deep}
    body = chat_body(tools=[{"type": "function", "function": {"name": "f", "parameters": deep}}])
    async with http.post(proxy.make_url("/v1/chat/completions"), data=json.dumps(body),
                         headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:  # as curl -d sends
        err = (await resp.json())["error"]
        assert resp.status == 400 and err["code"] == "json_too_deep" and "64 levels" in err["message"]


async def test_too_many_messages_is_400(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(max_messages=10)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}] * 11}
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body) as resp:
        err = (await resp.json())["error"]
        assert resp.status == 400 and err["code"] == "too_many_messages" and err["param"] == "messages"
    body["messages"] = body["messages"][:10]
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body) as resp:
        assert resp.status == 200


async def test_oversized_header_is_refused(emulator: TestServer) -> None:
    from aiproxy.server.serve import _serve  # the real listener: aiohttp answers this one itself (parse_errors.py)

    runner = await _serve(create_app(make_settings(emulator_url(emulator), max_header_bytes=2048)), "127.0.0.1", 0)
    try:
        reply = await raw_exchange(runner, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n")
    finally:
        await runner.cleanup()
    status, _, rest = reply.partition(b"\r\n")
    assert status.split(b" ", 1)[1] in (b"400 Bad Request", b"431 Request Header Fields Too Large")
    assert b"Server: aiproxy\r\n" in rest and b"aiohttp/" not in rest
    assert b"Traceback" not in reply


async def test_slowloris_headers_are_cut_off(limited_proxy: Any) -> None:
    proxy = await limited_proxy(keepalive_timeout=0.5)
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")  # ... and never finishes the headers
    await writer.drain()
    try:
        assert await asyncio.wait_for(reader.read(), timeout=30) == b""  # the server hung up
    finally:
        writer.close()


async def test_slow_body_is_408(proxy_factory: Any) -> None:
    proxy = await proxy_factory(client_body_timeout=0.3)
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{\"model\":")
    reply = await raw_exchange(proxy, head)  # 991 bytes never come
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"request_timeout"' in reply and b"Connection: close" in reply


async def test_flood_beyond_the_concurrency_cap_is_503(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(max_concurrent_requests=2)
    url = proxy.make_url("/v1/chat/completions")
    held = [await http.post(url, json=chat_body(scripted(fail_after=1, fail_mode="stall", chunks=4), stream=True))
            for _ in range(2)]
    for resp in held:
        await resp.content.readline()
    async with http.post(url, json=chat_body()) as resp:
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        assert (await resp.json())["error"]["code"] == "server_overloaded"
    async with http.get(proxy.make_url("/health")) as resp:
        assert resp.status == 200  # liveness is never refused
    for resp in held:
        resp.close()


async def test_security_headers_everywhere(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory()
    for method, path, body in [("GET", "/health", None), ("GET", "/v1/models", None), ("GET", "/nope", None),
                               ("POST", "/v1/chat/completions", chat_body()), ("POST", "/v1/chat/completions", {}),
                               ("GET", "/openapi.json", None)]:
        async with http.request(method, proxy.make_url(path), json=body) as resp:
            assert_security_headers(resp.headers)
    async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body(stream=True)) as resp:
        assert resp.status == 200
        assert_security_headers(resp.headers, cache="no-cache")
        await resp.read()


async def test_cors_allow_list(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(cors_allowed_origins="https://app.example")
    url = proxy.make_url("/v1/chat/completions")
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    async with http.options(url, headers=preflight) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "Access-Control-Allow-Credentials" not in resp.headers
    async with http.options(url, headers={**preflight, "Origin": "https://evil.example"}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
    async with http.post(url, json=chat_body(), headers={"Origin": "https://evil.example"}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
    async with http.post(url, json=chat_body(), headers={"Origin": "https://app.example"}) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"


async def test_cors_credentials_only_when_configured(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(cors_allowed_origins="https://app.example", cors_allow_credentials=True)
    async with http.options(proxy.make_url("/v1/models"), headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "GET"}) as resp:
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
