"""Gemini's errors -> what the client sees, and the raw-REST client against canned answers.

The client is driven against a tiny canned-answer server on loopback rather than a mock: a real
socket also exercises the SSE line reader and aiohttp's timeouts for real. Failures loopback
cannot provoke (connect timeout, DNS failure, reset before the status line) are mocked with
aioresponses-ng in test_upstream_faults.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from aiproxy.errors import ProxyError
from aiproxy.providers.gemini.client import GeminiClient, UpstreamStreamError, map_upstream_error
from aiproxy.providers.upstream import Timeouts

KEY = "AIzaSy-secret-key-123"
BASE = "http://gemini.test"


def google_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        err["details"] = details
    return {"error": err}


MAPPING = [
    pytest.param(400, google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload"), 400, "invalid_request_error",
                 "invalid_argument", id="400-stays-400"),
    pytest.param(404, google_error(404, "NOT_FOUND", "models/gemini-9 is not found"), 404, "invalid_request_error",
                 "model_not_found", id="404-model-not-found"),
    pytest.param(429, google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded"), 429, "rate_limit_error",
                 "rate_limit_exceeded", id="429"),
    pytest.param(500, google_error(500, "INTERNAL", "boom"), 502, "api_error", "upstream_error", id="500-becomes-502"),
    pytest.param(503, google_error(503, "UNAVAILABLE", "overloaded"), 503, "api_error", "upstream_unavailable",
                 id="503"),
    pytest.param(504, google_error(504, "DEADLINE_EXCEEDED", "slow"), 504, "api_error", "upstream_timeout", id="504"),
    pytest.param(502, {}, 502, "api_error", "upstream_error", id="502-without-body"),
]


@pytest.mark.parametrize(("status", "body", "out_status", "out_type", "code"), MAPPING)
def test_status_mapping(status: int, body: dict[str, Any], out_status: int, out_type: str, code: str) -> None:
    err = map_upstream_error(status, body, {}, KEY)
    assert (err.status, err.type, err.code) == (out_status, out_type, code)
    if body:
        assert body["error"]["message"] in err.message


def test_404_names_the_model_param() -> None:
    assert map_upstream_error(404, google_error(404, "NOT_FOUND", "no"), {}).param == "model"


@pytest.mark.parametrize(("headers", "details", "expected"), [
    pytest.param({"Retry-After": "17"}, None, "17", id="header"),
    pytest.param({}, [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"}], "31",
                 id="retry-info"),
    pytest.param({}, [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.2s"}], "1",
                 id="at-least-1"),
    pytest.param({"Retry-After": "5"}, [{"retryDelay": "31s"}], "5", id="header-wins"),
    pytest.param({}, [{"@type": "type.googleapis.com/google.rpc.QuotaFailure"}], None, id="unknown"),
])
def test_429_retry_after(headers: dict[str, str], details: Any, expected: str | None) -> None:
    err = map_upstream_error(429, google_error(429, "RESOURCE_EXHAUSTED", "slow down", details), headers)
    assert err.headers.get("Retry-After") == expected
    assert err.response().headers.get("Retry-After") == expected


@pytest.mark.parametrize(("status", "body"), [
    pytest.param(401, google_error(401, "UNAUTHENTICATED", f"bad key {KEY}"), id="401"),
    pytest.param(403, google_error(403, "PERMISSION_DENIED", f"Method doesn't allow key {KEY}"), id="403"),
    pytest.param(400, google_error(400, "INVALID_ARGUMENT", f"API key not valid. Please pass a valid API key. {KEY}"),
                 id="400-invalid-key"),
])
def test_bad_server_key_is_502_that_does_not_blame_the_client(status: int, body: dict[str, Any]) -> None:
    err = map_upstream_error(status, body, {}, KEY)
    assert (err.status, err.type, err.code) == (502, "api_error", "upstream_auth_error")
    assert "not a problem with your request" in err.message or "operator" in err.message
    assert KEY not in jsonutil.dumps_str(err.body())


def test_key_in_an_upstream_message_is_redacted() -> None:
    err = map_upstream_error(400, google_error(400, "INVALID_ARGUMENT", f"bad request for key={KEY}"), {}, KEY)
    assert KEY not in err.message and "[redacted]" in err.message


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + jsonutil.dumps(c) + b"\r\n\r\n" for c in chunks)


class Canned:
    """One canned answer per path; records what each request carried."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}  # path -> web.Response or an async handler
        self.seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((str(request.rel_url), dict(request.headers), await request.read()))
        answer = self.answers.pop(request.path)
        return await answer(request) if callable(answer) else answer


@pytest.fixture
async def canned() -> Any:
    c = Canned()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", c.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = GeminiClient(str(server.make_url("")), KEY, first_byte_timeout=5)
    await client.start()
    yield c, client
    await client.close()
    await server.close()


STREAM_PATH = "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
GENERATE_PATH = "/v1beta/models/gemini-2.5-pro:generateContent"  # a buffered request's one body


def error_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=jsonutil.dumps(body), content_type="application/json", headers=headers)


async def test_stream_yields_dicts_and_sends_the_key_only_as_header(canned: Any) -> None:
    server, client = canned
    chunks = [{"candidates": [{"content": {"parts": [{"text": "a"}]}}]},
              {"candidates": [{"content": {"parts": [{"text": "b"}]}, "finishReason": "STOP"}]}]
    server.answers[STREAM_PATH] = web.Response(body=b": keepalive\n\n" + sse(*chunks), content_type="text/event-stream")
    stream = await client.stream_generate("gemini-2.5-pro", b'{"contents":[]}')
    got = [c async for c in stream]
    stream.release()
    assert got == chunks
    (url, headers, body), = server.seen
    assert url == STREAM_PATH + "?alt=sse" and KEY not in url
    assert headers["x-goog-api-key"] == KEY
    assert body == b'{"contents":[]}'


async def test_events_split_across_reads_long_lines_and_no_final_newline_arrive_whole(canned: Any) -> None:
    server, client = canned
    big = {"candidates": [{"content": {"parts": [{"text": "x" * 200_000}]}}]}  # many network reads
    last = {"candidates": [{"content": {"parts": [{"text": "end"}]}, "finishReason": "STOP"}]}
    wire = sse(big) + b"data: " + jsonutil.dumps(last)  # no newline after the last event

    async def dribble(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(0, len(wire), 7001):  # cuts lines and the \r\n pairs apart
            await resp.write(wire[i:i + 7001])  # write() waits for the transport to drain
        await resp.write_eof()
        return resp

    server.answers[STREAM_PATH] = dribble
    stream = await client.stream_generate("gemini-2.5-pro", b"{}")
    got = [c async for c in stream]
    stream.release()
    assert got == [big, last]


ANSWER = {"candidates": [{"content": {"role": "model", "parts": [
    {"text": "thinking", "thought": True}, {"text": "Hello"},
    {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "c2ln"}]}, "finishReason": "STOP",
    "index": 0}], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}}
OVERLOADED = {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
INTERNAL = {"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}


@pytest.mark.parametrize(("method", "body", "status", "message"), [
    pytest.param("stream_generate", b"data: {not json\n\n", 502, "malformed", id="stream-malformed"),
    pytest.param("stream_generate", sse(OVERLOADED), 503, "overloaded", id="stream-error-event-503"),
    pytest.param("stream_generate", sse(INTERNAL), 502, "internal", id="stream-error-event-500"),
    # generateContent's one body breaks the same ways, with the same errors.
    pytest.param("generate", b"{not json", 502, "malformed", id="body-malformed"),
    pytest.param("generate", jsonutil.dumps(ANSWER)[:40], 502, "malformed", id="body-truncated-json"),
    pytest.param("generate", b"", 502, "malformed", id="body-empty"),
    pytest.param("generate", b"[1, 2]", 502, "malformed", id="body-not-an-object"),
    pytest.param("generate", jsonutil.dumps(OVERLOADED), 503, "overloaded", id="body-error-503"),
    pytest.param("generate", jsonutil.dumps(INTERNAL), 502, "internal", id="body-error-500"),
])
async def test_broken_answers_raise_upstream_stream_error(canned: Any, method: str, body: bytes, status: int,
                                                          message: str) -> None:
    server, client = canned
    path, kind = {"stream_generate": (STREAM_PATH, "text/event-stream"),
                  "generate": (GENERATE_PATH, "application/json")}[method]
    server.answers[path] = web.Response(body=body, content_type=kind)
    stream = await getattr(client, method)("gemini-2.5-pro", b"{}")
    with pytest.raises(UpstreamStreamError) as info:
        [c async for c in stream]
    stream.release()
    assert info.value.status == status and message in info.value.message


@pytest.mark.parametrize(("method", "path"), [("stream_generate", STREAM_PATH), ("generate", GENERATE_PATH)])
async def test_http_error_before_the_answer_is_mapped(canned: Any, method: str, path: str) -> None:
    server, client = canned
    server.answers[path] = error_response(429, google_error(429, "RESOURCE_EXHAUSTED", "quota"), {"Retry-After": "9"})
    with pytest.raises(ProxyError) as info:
        await getattr(client, method)("gemini-2.5-pro", b"{}")
    assert (info.value.status, info.value.headers) == (429, {"Retry-After": "9"})


async def test_unreachable_upstream_is_502() -> None:
    from aiproxy.server.serve import free_port

    client = GeminiClient(f"http://127.0.0.1:{free_port()}", KEY)
    await client.start()
    try:
        with pytest.raises(ProxyError) as info:
            await client.stream_generate("gemini-2.5-pro", b"{}")
        assert (info.value.status, info.value.code) == (502, "upstream_unreachable")
    finally:
        await client.close()


async def test_no_status_line_before_the_first_byte_timeout_is_504(canned: Any) -> None:
    server, client = canned
    client._timeouts = Timeouts(first_byte=0.05)
    gate = asyncio.Event()

    async def never(request: web.Request) -> web.Response:
        await gate.wait()  # no status line until the test is over
        return web.Response()

    server.answers[STREAM_PATH] = never
    try:
        with pytest.raises(ProxyError) as info:
            await client.stream_generate("gemini-2.5-pro", b"{}")
        assert (info.value.status, info.value.code) == (504, "upstream_timeout")
    finally:
        gate.set()


async def test_call_json_parses_and_maps_errors(canned: Any) -> None:
    server, client = canned
    server.answers["/v1beta/models"] = web.json_response({"models": [{"name": "models/gemini-2.5-pro"}]})
    server.answers["/v1beta/models/nope"] = error_response(404, google_error(404, "NOT_FOUND", "nope"))
    assert await client.call_json("GET", "models") == {"models": [{"name": "models/gemini-2.5-pro"}]}
    with pytest.raises(ProxyError) as info:
        await client.call_json("GET", "models/nope")
    assert info.value.code == "model_not_found"


async def test_generate_posts_to_generate_content_and_yields_the_body_as_one_chunk(canned: Any) -> None:
    server, client = canned
    server.answers[GENERATE_PATH] = web.Response(body=jsonutil.dumps(ANSWER), content_type="application/json")
    answer = await client.generate("gemini-2.5-pro", b'{"contents":[]}')
    got = [c async for c in answer]
    answer.release()
    assert got == [ANSWER] and answer.model == "gemini-2.5-pro"
    (url, headers, body), = server.seen
    assert url == GENERATE_PATH and KEY not in url  # no ?alt=sse: one JSON body
    assert headers["x-goog-api-key"] == KEY and body == b'{"contents":[]}'




async def test_generate_body_cut_short_is_a_broken_stream(canned: Any) -> None:
    server, client = canned

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b'{"candidates": [')
        assert request.transport is not None
        request.transport.abort()
        return resp

    server.answers[GENERATE_PATH] = cut
    answer = await client.generate("gemini-2.5-pro", b"{}")
    with pytest.raises(UpstreamStreamError) as info:
        [c async for c in answer]
    answer.release()
    assert (info.value.status, info.value.code) == (502, "upstream_error")


async def test_generate_body_stalled_after_the_headers_hits_the_idle_timeout(canned: Any) -> None:
    server, client = canned
    client._answer_timeouts = Timeouts(first_byte=5, idle=0.1)
    gate = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await gate.wait()
        return resp

    server.answers[GENERATE_PATH] = stall
    try:
        answer = await client.generate("gemini-2.5-pro", b"{}")
        with pytest.raises(UpstreamStreamError) as info:
            [c async for c in answer]
        answer.close()
        assert (info.value.status, info.value.code) == (504, "upstream_timeout")
    finally:
        gate.set()


def buffered_call(client: GeminiClient) -> Any:
    from aiproxy.openai.types import parse_chat_request
    from aiproxy.providers.base import ChatOptions
    from aiproxy.providers.gemini.provider import GeminiProvider

    req = parse_chat_request({"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]})
    return GeminiProvider(client).prepare_chat(req, "gemini-2.5-pro", ChatOptions(completion_id="c", stream=False))


async def test_buffered_chat_translates_the_whole_body_once(canned: Any) -> None:
    server, client = canned
    server.answers[GENERATE_PATH] = web.Response(body=jsonutil.dumps(ANSWER), content_type="application/json")
    stream = await buffered_call(client).open()
    out = [chunks async for chunks in stream]
    stream.release()
    assert len(out) == 1  # one body in, one translation out
    (chunk,) = out[0]
    delta = chunk["choices"][0]["delta"]
    assert (delta["reasoning_content"], delta["content"]) == ("thinking", "Hello")
    assert delta["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a":1}'}
    assert stream.finish()[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.usage() is not None and stream.usage().total == 5


async def test_buffered_chat_body_without_a_finish_is_incomplete(canned: Any) -> None:
    server, client = canned
    unfinished = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}]}
    server.answers[GENERATE_PATH] = web.Response(body=jsonutil.dumps(unfinished), content_type="application/json")
    stream = await buffered_call(client).open()
    with pytest.raises(UpstreamStreamError) as info:
        [chunks async for chunks in stream]
    stream.release()
    assert "before the answer was complete" in info.value.message
