"""The response cache (issue 15) end to end: real proxy, real emulator, memory and Redis stores.

What a client sees (X-Cache, the same answer without an upstream call, a valid SSE replay read
by the official openai SDK) and what the ledger keeps (one row per request, the hit flagged,
charged CACHE_HIT_PRICE_RATIO of the cost).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy import jsonutil
from aiproxy.appkeys import LEDGER_KEY
from aiproxy.cache import store as cache_store
from aiproxy.emulator import directive_text
from tests.conftest import generation_requests, recorded_requests
from tests.ledger.faults import Relay

REDIS = "redis://127.0.0.1:6379/0"
ROUTE = "/v1/chat/completions"
ADMIN = "admin-token-for-the-cache-tests"


def body(text: str = "hello cache", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


async def generate_calls(http: aiohttp.ClientSession, emulator: TestServer) -> int:
    return len(await generation_requests(http, emulator))


async def post(http: aiohttp.ClientSession, proxy: TestServer, payload: dict[str, Any],
               **headers: str) -> tuple[int, str | None, bytes]:
    async with http.post(proxy.make_url(ROUTE), json=payload, headers=headers) as resp:
        return resp.status, resp.headers.get("X-Cache"), await resp.read()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"aiproxy-test:{os.getpid()}:{secrets.token_hex(4)}:"
    yield prefix
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_cache_off_sends_no_header_and_always_calls_upstream(proxy_factory: Any, emulator: TestServer,
                                                                   http: aiohttp.ClientSession,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    keys_built: list[object] = []
    monkeypatch.setattr("aiproxy.api.chat.answer_shape", lambda req: keys_built.append(req) or {})
    proxy = await proxy_factory()
    for _ in range(2):
        status, x_cache, _ = await post(http, proxy, body())
        assert (status, x_cache) == (200, None)
    assert await generate_calls(http, emulator) == 2
    assert keys_built == []  # off costs a request no cache key


@pytest.mark.parametrize("stream", [False, True])
async def test_a_repeat_is_a_hit_without_an_upstream_call(proxy_factory: Any, emulator: TestServer,
                                                          http: aiohttp.ClientSession, stream: bool) -> None:
    proxy = await proxy_factory(response_cache="memory")
    payload = body(stream=stream, stream_options={"include_usage": True} if stream else None)
    if not stream:
        del payload["stream_options"]
    status, x_cache, first = await post(http, proxy, payload)
    assert (status, x_cache) == (200, "MISS")
    status, x_cache, second = await post(http, proxy, payload)
    assert (status, x_cache) == (200, "HIT")
    assert await generate_calls(http, emulator) == 1
    if not stream:
        a, b = jsonutil.loads(first), jsonutil.loads(second)
        assert b["choices"] == a["choices"] and b["usage"] == a["usage"]
        assert b["id"] != a["id"] and b["model"] == "gpt-4o-mini"
    else:
        assert second.endswith(b"data: [DONE]\n\n")
    other = body("something else", stream=stream)
    assert (await post(http, proxy, other))[1] == "MISS"  # a different question is not the same answer


async def test_no_cache_stores_and_no_store_bypasses(proxy_factory: Any, emulator: TestServer,
                                                     http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory(response_cache="memory")
    assert (await post(http, proxy, body("a"), **{"Cache-Control": "no-store"}))[1] == "BYPASS"
    assert (await post(http, proxy, body("a")))[1] == "MISS"  # no-store kept nothing
    assert (await post(http, proxy, body("a"), **{"Cache-Control": "no-cache"}))[1] == "MISS"  # looked nothing up
    assert (await post(http, proxy, body("b"), **{"Cache-Control": "no-cache"}))[1] == "MISS"
    assert (await post(http, proxy, body("b")))[1] == "HIT"  # ... but no-cache stored its answer
    assert await generate_calls(http, emulator) == 4


@pytest.mark.parametrize("directive", [{"finish": "SAFETY"}, {"finish": "MAX_TOKENS"},
                                       {"fail_after": 2, "fail_mode": "error_event"}])
async def test_filtered_and_cut_off_answers_are_not_stored(proxy_factory: Any, emulator: TestServer,
                                                           http: aiohttp.ClientSession,
                                                           directive: dict[str, Any]) -> None:
    proxy = await proxy_factory(response_cache="memory")
    payload = body("hi " + directive_text(words=20, chunks=5, **directive), stream=True)
    for _ in range(2):
        status, x_cache, _ = await post(http, proxy, payload)
        assert (status, x_cache) == (200, "MISS")
    assert await generate_calls(http, emulator) == 2


async def test_user_scope_and_global_scope(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    per_user = await proxy_factory(response_cache="memory")
    assert (await post(http, per_user, body(user="alice")))[1] == "MISS"
    assert (await post(http, per_user, body(user="bob")))[1] == "MISS"  # another user's answer is not shared
    assert (await post(http, per_user, body(user="alice")))[1] == "HIT"
    shared = await proxy_factory(response_cache="memory", response_cache_scope="global")
    assert (await post(http, shared, body(user="alice")))[1] == "MISS"
    assert (await post(http, shared, body(user="bob")))[1] == "HIT"
    assert (await post(http, shared, body(user_id="carol")))[1] == "HIT"  # the billing identity shapes nothing


async def test_openai_sdk_reads_the_sse_replay(proxy_factory: Any, emulator: TestServer) -> None:
    from openai import AsyncOpenAI

    proxy = await proxy_factory(response_cache="memory")
    client = AsyncOpenAI(base_url=str(proxy.make_url("/v1")), api_key="unused")

    async def run() -> tuple[str, Any, list[Any]]:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "tell me a story"}], stream=True,
            stream_options={"include_usage": True})
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, chunks[-1].usage, chunks

    try:
        live_text, live_usage, _ = await run()
        hit_text, hit_usage, chunks = await run()
    finally:
        await client.close()
    assert hit_text == live_text and hit_text
    assert hit_usage.prompt_tokens == live_usage.prompt_tokens
    assert hit_usage.completion_tokens == live_usage.completion_tokens
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []  # the usage chunk, as include_usage asks


@pytest.mark.redis
async def test_two_instances_share_the_cache_in_redis(proxy_factory: Any, emulator: TestServer,
                                                      http: aiohttp.ClientSession, redis_prefix: str) -> None:
    a = await proxy_factory(response_cache="redis", redis_url=REDIS, redis_key_prefix=redis_prefix)
    b = await proxy_factory(response_cache="redis", redis_url=REDIS, redis_key_prefix=redis_prefix)
    status, x_cache, first = await post(http, a, body("shared question"))
    assert (status, x_cache) == (200, "MISS")
    status, x_cache, second = await post(http, b, body("shared question"))
    assert (status, x_cache) == (200, "HIT")
    assert jsonutil.loads(second)["choices"] == jsonutil.loads(first)["choices"]
    assert await generate_calls(http, emulator) == 1


@pytest.mark.parametrize("ratio", ["0", "0.5"])
async def test_a_hit_is_one_flagged_row_charged_the_ratio(proxy_factory: Any, http: aiohttp.ClientSession,
                                                          ledger_url: str, ratio: str) -> None:
    proxy = await proxy_factory(response_cache="memory", usage_db_url=ledger_url, admin_token=ADMIN,
                                cache_hit_price_ratio=Decimal(ratio))
    await post(http, proxy, body())
    await post(http, proxy, body(stream=True))  # a hit too: the stream flag does not shape the answer
    miss, hit = await proxy.app[LEDGER_KEY].rows()
    assert not miss["cache_hit"] and hit["cache_hit"]
    assert (hit["prompt_tokens"], hit["completion_tokens"]) == (miss["prompt_tokens"], miss["completion_tokens"])
    assert Decimal(str(miss["cost_usd"])) > 0
    assert Decimal(str(hit["cost_usd"])) == Decimal(str(miss["cost_usd"])) * Decimal(ratio)
    assert hit["status"] == "ok" and hit["streamed"]
    full, charged = Decimal(str(miss["cost_usd"])), Decimal(str(hit["cost_usd"]))
    assert Decimal(str(hit["cache_savings_usd"])) == full - charged and Decimal(str(miss["cache_savings_usd"])) == 0
    async with http.get(proxy.make_url("/v1/usage"), headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
        total = (await resp.json())["total"]
    assert total["requests"] == 2 and total["cache_hits"] == 1
    assert Decimal(total["cache_savings_usd"]) == full - charged
    assert Decimal(total["cost_usd"]) == full + charged
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with http.get(proxy.make_url("/dashboard/api/summary"), headers=admin) as resp:
        assert resp.status == 200
        shown = (await resp.json())["totals"]
    assert (shown["cache_savings_usd"], shown["cache"]) == (total["cache_savings_usd"], "memory")
    async with http.get(proxy.make_url("/metrics")) as resp:
        metrics = await resp.text()
    assert 'aiproxy_response_cache_lookups_total{result="hit"}' in metrics
    assert 'aiproxy_response_cache_lookups_total{result="miss"}' in metrics
    assert "aiproxy_response_cache_saved_usd_total" in metrics


@pytest.mark.parametrize("fmt", ["float", "base64"])
async def test_embeddings_repeat_is_a_hit_with_the_same_vectors(proxy_factory: Any, emulator: TestServer,
                                                                http: aiohttp.ClientSession, fmt: str) -> None:
    proxy = await proxy_factory(response_cache="memory")

    async def embed(texts: list[str], **headers: str) -> tuple[str | None, dict[str, Any]]:
        payload = {"model": "text-embedding-3-small", "input": texts, "encoding_format": fmt}
        async with http.post(proxy.make_url("/v1/embeddings"), json=payload, headers=headers) as resp:
            assert resp.status == 200
            return resp.headers.get("X-Cache"), await resp.json()

    x_miss, miss = await embed(["one", "two"])
    x_hit, hit = await embed(["one", "two"])
    assert (x_miss, x_hit) == ("MISS", "HIT")
    assert hit["data"] == miss["data"] and hit["usage"] == miss["usage"]
    assert (await embed(["one", "two"], **{"Cache-Control": "no-store"}))[0] == "BYPASS"
    assert (await embed(["one"]))[0] == "MISS"
    embeds = [r for r in await recorded_requests(http, emulator) if "mbedContent" in r["path"]]
    assert len(embeds) == 3  # the hit called nothing upstream
    rows = await proxy.app[LEDGER_KEY].rows()
    assert [bool(r["cache_hit"]) for r in rows] == [False, True, False, False]
    assert rows[1]["prompt_tokens"] == rows[0]["prompt_tokens"] and Decimal(str(rows[1]["cost_usd"])) == 0


# ---- Redis down: the cache fails open ------------------------------------------------------------

def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SilentServer:
    """Accepts connections and never answers: a Redis that hangs."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.read()  # until the client gives up
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


def cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aiproxy.cache" and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("down", ["refused", "silent"])
async def test_redis_down_serves_from_upstream_billed_once(proxy_factory: Any, emulator: TestServer,
                                                           http: aiohttp.ClientSession, tmp_path: Any,
                                                           caplog: pytest.LogCaptureFixture, billing_lines: Any,
                                                           down: str) -> None:
    silent = SilentServer()
    port = await silent.start() if down == "silent" else closed_port()
    proxy = await proxy_factory(response_cache="redis", redis_url=f"redis://:hunter2-pw@127.0.0.1:{port}/0",
                                usage_db_url=f"sqlite:///{tmp_path}/usage.db")
    try:
        for stream in (False, True):
            started = time.monotonic()
            status, x_cache, answer = await post(http, proxy, body("while redis is down", stream=stream))
            assert (status, x_cache) == (200, "MISS")  # answered by the upstream, not an error, not a hang
            assert time.monotonic() - started < 3 * cache_store.TIMEOUT + 2
            assert answer.endswith(b"data: [DONE]\n\n") if stream else jsonutil.loads(answer)["choices"]
    finally:
        await silent.close()
    assert await generate_calls(http, emulator) == 2
    rows = await proxy.app[LEDGER_KEY].rows()
    assert [(r["status"], bool(r["cache_hit"])) for r in rows] == [("ok", False), ("ok", False)]
    assert Decimal(str(rows[0]["cost_usd"])) > 0 and len(billing_lines()) == 2  # each request billed once
    [warning] = cache_warnings(caplog)  # once per outage, without the URL's password
    assert "Redis unavailable" in warning and "hunter2" not in warning and str(port) not in warning
    if down == "silent":
        assert silent.connections == 1  # while down, later requests do not wait on Redis again


@pytest.mark.redis
async def test_redis_cut_mid_test_then_back(proxy_factory: Any, emulator: TestServer, http: aiohttp.ClientSession,
                                            redis_prefix: str, caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_store, "RETRY_AFTER", 0.3)
    caplog.set_level(logging.INFO, logger="aiproxy.cache")
    relay = Relay(6379)
    await relay.start()
    proxy = await proxy_factory(response_cache="redis", redis_url=f"redis://127.0.0.1:{relay.port}/0",
                                redis_key_prefix=redis_prefix)
    try:
        assert (await post(http, proxy, body("cut")))[1] == "MISS"
        assert (await post(http, proxy, body("cut")))[1] == "HIT"
        relay.cut()
        status, x_cache, answer = await post(http, proxy, body("cut"))
        assert (status, x_cache) == (200, "MISS") and jsonutil.loads(answer)["choices"]
        assert await generate_calls(http, emulator) == 2  # served from the upstream while Redis is gone
        relay.restore()
        await asyncio.sleep(0.4)
        assert (await post(http, proxy, body("cut")))[1] == "HIT"  # back once Redis answers again
    finally:
        await relay.close()
    rows = await proxy.app[LEDGER_KEY].rows()
    assert [bool(r["cache_hit"]) for r in rows] == [False, True, False, True]
    assert len(cache_warnings(caplog)) == 1
    assert any("answers again" in r.getMessage() for r in caplog.records if r.name == "aiproxy.cache")
