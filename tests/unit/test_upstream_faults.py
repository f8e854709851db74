"""Upstream failures a loopback server cannot provoke, mocked with aioresponses-ng.

A connect timeout needs a network that swallows SYNs, a DNS failure needs a resolver, and a
reset before the status line is timing-dependent on a real socket; aioresponses raises each
from inside `ClientSession.request`, exactly where aiohttp raises it, so these tests pin the
OpenAI status and code `GeminiClient` maps each one to, and whether it retries or falls back.
Everything that reads bytes (the SSE reader, timeouts mid-stream) stays on the loopback canned
server in test_upstream.py, where a real socket exercises it.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses

from aiproxy import jsonutil
from aiproxy.backoff import RetryPolicy
from aiproxy.errors import ProxyError
from aiproxy.providers.gemini.client import GeminiClient, UpstreamEvents

KEY = "AIzaSy-secret-key-123"
BASE = "https://gemini.test"


def stream_url(model: str) -> str:
    return f"{BASE}/v1beta/models/{model}:streamGenerateContent?alt=sse"


def dns_failure() -> aiohttp.ClientConnectorDNSError:
    key = ConnectionKey("gemini.test", 443, True, True, None, None, None, None)
    return aiohttp.ClientConnectorDNSError(key, socket.gaierror(socket.EAI_NONAME, "Name or service not known"))


def reset_before_status_line() -> aiohttp.ClientOSError:
    return aiohttp.ClientOSError(errno.ECONNRESET, "Connection reset by peer")


SSE_OK = b'data: {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]}\r\n\r\n'


class Recorded(UpstreamEvents):
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def retry(self, model: str, reason: str) -> None:
        self.calls.append(("retry", model, reason))

    def fallback(self, from_model: str, to_model: str, reason: str) -> None:
        self.calls.append(("fallback", from_model, to_model, reason))

    def failure(self, model: str, reason: str) -> None:
        self.calls.append(("failure", model, reason))


@pytest.fixture
async def client() -> AsyncIterator[GeminiClient]:
    c = GeminiClient(BASE, KEY)
    c.events = Recorded()
    await c.start()
    yield c
    await c.close()


def events(client: GeminiClient) -> list[tuple[str, ...]]:
    assert isinstance(client.events, Recorded)
    return client.events.calls


FAILURES = [
    pytest.param(aiohttp.ConnectionTimeoutError("Connection timeout to host"), 504, "upstream_timeout", "timeout",
                 id="connect-timeout"),
    pytest.param(dns_failure(), 502, "upstream_unreachable", "connect", id="dns-failure"),
    pytest.param(reset_before_status_line(), 502, "upstream_unreachable", "connect", id="reset-before-status-line"),
    pytest.param(aiohttp.ServerDisconnectedError(), 502, "upstream_unreachable", "connect",
                 id="disconnected-before-status-line"),
]


@pytest.mark.parametrize(("exc", "status", "code", "reason"), FAILURES)
async def test_connection_failures_map_to_openai_errors(client: GeminiClient, exc: Exception, status: int, code: str,
                                                        reason: str) -> None:
    with aioresponses() as mock:
        mock.post(stream_url("gemini-2.5-pro"), exception=exc)
        with pytest.raises(ProxyError) as info:
            await client.stream_generate("gemini-2.5-pro", b"{}")
    err = info.value
    assert (err.status, err.type, err.code) == (status, "api_error", code)
    body = jsonutil.dumps_str(err.body())
    assert KEY not in body and "Traceback" not in body and type(exc).__name__ not in body
    assert events(client) == [("failure", "gemini-2.5-pro", reason)]


@pytest.mark.parametrize("exc", [dns_failure(), reset_before_status_line()], ids=["dns-failure", "reset"])
async def test_connection_errors_are_retried_on_the_same_model(client: GeminiClient, exc: Exception) -> None:
    client.retry_policy = RetryPolicy(retries=2, base_delay=0.001, max_delay=0.001)
    with aioresponses() as mock:
        mock.post(stream_url("gemini-2.5-pro"), exception=exc, repeat=2)
        mock.post(stream_url("gemini-2.5-pro"), status=200, body=SSE_OK, content_type="text/event-stream")
        stream = await client.stream_generate("gemini-2.5-pro", b"{}")
        chunks = [chunk async for chunk in stream]
    assert stream.model == "gemini-2.5-pro"
    assert chunks[0]["candidates"][0]["content"]["parts"] == [{"text": "hi"}]
    assert [e[0] for e in events(client)] == ["failure", "retry", "failure", "retry"]


async def test_retries_used_up_on_connection_errors_is_502(client: GeminiClient) -> None:
    client.retry_policy = RetryPolicy(retries=1, base_delay=0.001, max_delay=0.001)
    with aioresponses() as mock:
        mock.post(stream_url("gemini-2.5-pro"), exception=reset_before_status_line(), repeat=True)
        with pytest.raises(ProxyError) as info:
            await client.stream_generate("gemini-2.5-pro", b"{}")
    assert (info.value.status, info.value.code) == (502, "upstream_unreachable")
    assert [e[0] for e in events(client)] == ["failure", "retry", "failure"]


async def test_connect_timeout_falls_back_and_is_not_retried(client: GeminiClient) -> None:
    client.retry_policy = RetryPolicy(retries=2, base_delay=0.001, max_delay=0.001)
    client.fallbacks = {"gemini-2.5-pro": ("gemini-2.5-flash",)}
    with aioresponses() as mock:
        mock.post(stream_url("gemini-2.5-pro"), exception=aiohttp.ConnectionTimeoutError("timeout"))
        mock.post(stream_url("gemini-2.5-flash"), status=200, body=SSE_OK, content_type="text/event-stream")
        stream = await client.stream_generate("gemini-2.5-pro", b"{}")
        assert [chunk async for chunk in stream]
    assert stream.model == "gemini-2.5-flash"
    assert events(client) == [("failure", "gemini-2.5-pro", "timeout"),
                              ("fallback", "gemini-2.5-pro", "gemini-2.5-flash", "timeout")]


async def test_call_json_maps_a_dns_failure_too(client: GeminiClient) -> None:
    with aioresponses() as mock:
        mock.get(f"{BASE}/v1beta/models", exception=dns_failure())
        with pytest.raises(ProxyError) as info:
            await client.call_json("GET", "models")
    assert (info.value.status, info.value.code) == (502, "upstream_unreachable")


