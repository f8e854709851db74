"""Errors as the SDK sees them, mid-stream failures, models, health, request ids and CORS."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from aiproxy.emulator import directive_text
from tests.conftest import EMULATOR_KEY


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.body if isinstance(exc.body, dict) else {}
    return body.get("error", body)


def assert_openai_error(payload: dict[str, Any]) -> dict[str, Any]:
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"message", "type", "param", "code"}
    return payload["error"]


async def test_bad_json_is_400(proxy_url: str, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{proxy_url}/v1/chat/completions", data=b"{nope",
                         headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        err = assert_openai_error(await resp.json())
    assert (err["type"], err["code"]) == ("invalid_request_error", "invalid_json")


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"temperature": 5}, "temperature"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": ""}]}, "messages[0].content"),
    ({"messages": []}, "messages"),
    ({"stop": [1, 2]}, "stop"),
])
async def test_validation_errors_name_the_param(openai_client: Any, kwargs: dict[str, Any], param: str,
                                               http: aiohttp.ClientSession, emulator: TestServer) -> None:
    args = {"model": "gpt-4", "messages": user("hi"), **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        await openai_client.chat.completions.create(**args)
    assert error_of(info.value)["param"] == param
    async with http.get(emulator.make_url("/_emulator/stats")) as resp:
        assert (await resp.json())["requests_total"] == 0  # nothing was spent upstream


async def test_missing_model_is_400_naming_it(proxy_url: str, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{proxy_url}/v1/chat/completions", json={"messages": user("hi")}) as resp:
        assert resp.status == 400
        err = assert_openai_error(await resp.json())
    assert (err["param"], err["code"]) == ("model", "missing_required_parameter")


async def test_unknown_route_is_404_json(proxy_url: str, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{proxy_url}/v1/nothing-here") as resp:
        assert resp.status == 404
        err = assert_openai_error(await resp.json())
    assert err["code"] == "unknown_url"


@pytest.mark.parametrize("model", ["gpt-2", "gemini-9-ultra"], ids=["unmapped", "unknown-upstream"])
async def test_unknown_model_is_404_model_not_found(openai_client: Any, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await openai_client.chat.completions.create(model=model, messages=user("hi"))
    assert (error_of(info.value)["code"], error_of(info.value)["param"]) == ("model_not_found", "model")


@pytest.mark.parametrize(("directive", "exc_type", "status", "code"), [
    ({"error": 400}, openai.BadRequestError, 400, "invalid_argument"),
    ({"error": 429, "retry_after": 7}, openai.RateLimitError, 429, "rate_limit_exceeded"),
    ({"error": 500}, openai.InternalServerError, 502, "upstream_error"),
    ({"error": 503}, openai.InternalServerError, 503, "upstream_unavailable"),
    ({"error": 403}, openai.InternalServerError, 502, "upstream_auth_error"),
])
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
async def test_upstream_error_statuses(openai_client: Any, billing_lines: Any, directive: dict[str, Any],
                                       exc_type: type[Exception], status: int, code: str, stream: bool) -> None:
    with pytest.raises(exc_type) as info:
        await openai_client.chat.completions.create(model="gpt-4", messages=user("x " + directive_text(**directive)),
                                                    stream=stream)
    exc = info.value
    assert isinstance(exc, openai.APIStatusError)
    assert exc.status_code == status and error_of(exc)["code"] == code
    if status == 429:
        assert exc.response.headers["retry-after"] == "7"
    assert EMULATOR_KEY not in exc.response.text
    assert billing_lines() == []  # refused before Gemini generated anything


async def test_wrong_server_key_is_502_not_blaming_the_client(proxy_factory: Any) -> None:
    from openai import AsyncOpenAI

    server = await proxy_factory(gemini_api_key="AIza-wrong-server-key")
    async with AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="client-key", max_retries=0) as client:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="gpt-4", messages=user("hi"))
    err = error_of(info.value)
    assert info.value.status_code == 502 and err["code"] == "upstream_auth_error"
    assert "AIza-wrong-server-key" not in info.value.response.text and "operator" in err["message"]


def sse_events(raw: bytes) -> list[str]:
    text = raw.decode()
    assert text.endswith("\n\n")
    return [e.removeprefix("data: ") for e in text.split("\n\n")[:-1]]


@pytest.mark.parametrize("mode", ["error_event", "reset", "truncate", "malformed"])
async def test_mid_stream_failure_ends_with_error_event_then_done(
    proxy_url: str, http: aiohttp.ClientSession, billing_lines: Any, mode: str
) -> None:
    body = {"model": "gpt-4", "stream": True,
            "messages": user("go " + directive_text(chunks=4, words=20, fail_after=2, fail_mode=mode))}
    async with http.post(f"{proxy_url}/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        events = sse_events(await resp.read())
    assert events[-1] == "[DONE]"
    error = assert_openai_error(jsonutil.loads(events[-2]))
    assert error["type"] == "api_error"
    content = [jsonutil.loads(e)["choices"][0]["delta"].get("content") for e in events[:-2]]
    assert len(content) == 2 and all(content)  # the two chunks before the failure were passed on
    (line,) = billing_lines()
    assert "Model: gpt-4" in line


async def test_mid_stream_stall_hits_the_idle_timeout(proxy_factory: Any, http: aiohttp.ClientSession,
                                                      billing_lines: Any) -> None:
    server = await proxy_factory(upstream_idle_timeout=0.3)
    body = {"model": "gpt-4", "stream": True,
            "messages": user("go " + directive_text(chunks=3, fail_after=1, fail_mode="stall"))}
    async with http.post(server.make_url("/v1/chat/completions"), json=body) as resp:
        events = sse_events(await resp.read())
    assert events[-1] == "[DONE]"
    assert jsonutil.loads(events[-2])["error"]["code"] == "upstream_timeout"
    assert len(billing_lines()) == 1


async def test_mid_stream_failure_raises_in_the_sdk(openai_client: Any) -> None:
    stream = await openai_client.chat.completions.create(
        model="gpt-4", stream=True,
        messages=user("go " + directive_text(chunks=3, fail_after=1, fail_mode="error_event")))
    got = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            got.append(chunk)
    assert len(got) == 1


async def test_buffered_mid_stream_failure_is_an_http_error(openai_client: Any, billing_lines: Any) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        await openai_client.chat.completions.create(
            model="gpt-4", messages=user("go " + directive_text(chunks=3, fail_after=1, fail_mode="reset")))
    assert info.value.status_code == 502
    assert len(billing_lines()) == 1


async def test_models_list_has_aliases_and_upstream_models(openai_client: Any) -> None:
    page = await openai_client.models.list()
    ids = [m.id for m in page.data]
    assert {"gpt-3.5-turbo", "gpt-4", "gemini-flash", "gemini-pro", "gpt-4o"} <= set(ids)
    assert {"gemini-2.5-pro", "gemini-2.5-flash", "gemini-embedding-001"} <= set(ids)
    assert len(ids) == len(set(ids))
    assert all(m.object == "model" for m in page.data)
    assert {m.owned_by for m in page.data if m.id == "gemini-2.5-flash"} == {"google"}


async def test_model_retrieve(openai_client: Any) -> None:
    assert (await openai_client.models.retrieve("gpt-4")).id == "gpt-4"
    assert (await openai_client.models.retrieve("gemini-2.5-flash")).owned_by == "google"
    with pytest.raises(openai.NotFoundError):
        await openai_client.models.retrieve("no-such-model")


async def test_health(proxy_url: str, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{proxy_url}/health") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "healthy"}


async def test_unprefixed_chat_route(proxy_url: str, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{proxy_url}/chat/completions", json={"model": "gpt-4", "messages": user("hi")}) as resp:
        assert resp.status == 200
        assert (await resp.json())["object"] == "chat.completion"


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "stream"])
async def test_plain_client_request_id_is_echoed_but_the_server_id_is_billed(
        proxy_url: str, http: aiohttp.ClientSession, billing_lines: Any, stream: bool) -> None:
    body = {"model": "gpt-4", "messages": user("hi"), "stream": stream}
    async with http.post(f"{proxy_url}/v1/chat/completions", json=body,
                         headers={"X-Request-ID": "trace-abc.123"}) as resp:
        assert resp.headers["X-Request-ID"] == "trace-abc.123"
        server_id = resp.headers["X-Aiproxy-Request-ID"]
        await resp.read()
    assert re.fullmatch(r"req-[0-9a-f]{24}", server_id)
    assert billing_lines()[0].endswith(f"| Request ID: {server_id}")


async def test_without_a_plain_client_id_both_headers_carry_the_server_id(proxy_url: str,
                                                                          http: aiohttp.ClientSession) -> None:
    async with http.get(f"{proxy_url}/health", headers={"X-Request-ID": "bad id; drop table"}) as resp:
        rid = resp.headers["X-Request-ID"]
        assert resp.headers["X-Aiproxy-Request-ID"] == rid
    assert re.fullmatch(r"req-[0-9a-f]{24}", rid)
    async with http.get(f"{proxy_url}/v1/unknown") as resp:
        assert re.fullmatch(r"req-[0-9a-f]{24}", resp.headers["X-Request-ID"])  # errors carry one too
        assert resp.headers["X-Aiproxy-Request-ID"] == resp.headers["X-Request-ID"]


async def test_cors_preflight_from_an_allowed_origin(proxy_url: str, http: aiohttp.ClientSession) -> None:
    headers = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization,content-type"}
    async with http.options(f"{proxy_url}/v1/chat/completions", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert "AUTHORIZATION" in resp.headers["Access-Control-Allow-Headers"].upper()
    async with http.get(f"{proxy_url}/v1/models", headers={"Origin": "http://localhost:3000"}) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        exposed = {h.strip().lower() for h in resp.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"x-request-id", "x-aiproxy-request-id"} <= exposed


async def test_cors_refuses_other_origins(proxy_url: str, http: aiohttp.ClientSession) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    async with http.options(f"{proxy_url}/v1/chat/completions", headers=headers) as resp:
        assert resp.status == 403
        assert "Access-Control-Allow-Origin" not in resp.headers
