"""Rate limits: the bucket arithmetic, and the wire behaviour (429, Retry-After, x-ratelimit-*)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from aiproxy.access.limits import Bucket, Limits, MemoryLimiter, take
from aiproxy.access.throttle import duration
from aiproxy.appkeys import ACCESS_KEY, METER_KEY
from aiproxy.billing.record import CLIENT_DISCONNECTED
from tests.access.conftest import add_key, bearer, chat_body, scripted

HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
           "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")


# --- pure arithmetic --------------------------------------------------------------------------

@pytest.mark.parametrize("level,limit,need,now,allowed,retry", [
    (2.0, 2, 1, 0.0, True, 0.0),          # full bucket
    (0.0, 60, 1, 0.0, False, 1.0),        # empty: one unit per second at 60/min
    (0.0, 60, 1, 0.5, False, 0.5),        # half refilled
    (0.0, 60, 1, 1.0, True, 0.0),         # exactly refilled
    (0.5, 6, 1, 0.0, False, 5.0),         # 6/min = one per 10 s; half a unit missing
])  # fmt: skip
def test_request_bucket(level: float, limit: int, need: int, now: float, allowed: bool, retry: float) -> None:
    state = take(Bucket(level, 0.0), None, Limits(rpm=limit), 0, now)
    assert state.allowed is allowed
    assert state.retry_after == pytest.approx(retry)
    assert state.exceeded == ("" if allowed else "requests")


def test_tokens_and_requests_consume_together_or_not_at_all() -> None:
    req, tok = Bucket(5.0, 0.0), Bucket(100.0, 0.0)
    limits = Limits(rpm=5, tpm=100)
    ok = take(req, tok, limits, 60, 0.0)
    assert ok.allowed and (ok.remaining_requests, ok.remaining_tokens) == (4, 40)
    refused = take(req, tok, limits, 60, 0.0)  # tokens short: the request count is not consumed
    assert not refused.allowed and refused.exceeded == "tokens"
    assert (req.level, tok.level) == (4.0, 40.0)
    assert refused.retry_after == pytest.approx(20 * 60 / 100)
    assert refused.reset_tokens == pytest.approx(60 * 60 / 100)


def test_estimate_larger_than_the_bucket_waits_for_a_full_bucket() -> None:
    tok = Bucket(100.0, 0.0)
    assert take(None, tok, Limits(tpm=100), 10_000, 0.0).allowed  # clamped to 100
    assert tok.level == 0.0


async def test_adjust_can_go_into_debt_and_refund() -> None:
    now = [0.0]
    lim = MemoryLimiter(clock=lambda: now[0])
    limits = Limits(tpm=100)
    assert (await lim.acquire("k", limits, 50)).remaining_tokens == 50
    await lim.adjust("k", limits, 120)  # used 170 in truth
    state = await lim.peek("k", limits)
    assert state.remaining_tokens == 0 and state.reset_tokens == pytest.approx(170 * 0.6)
    assert not (await lim.acquire("k", limits, 1)).allowed
    await lim.adjust("k", limits, -500)  # refunds never overfill
    assert (await lim.peek("k", limits)).remaining_tokens == 100


@pytest.mark.parametrize("seconds,text", [(0.0, "0ms"), (0.25, "250ms"), (1.0, "1s"), (59.2, "1m0s"),
                                          (61, "1m1s"), (360, "6m0s")])
def test_reset_duration_format(seconds: float, text: str) -> None:
    assert duration(seconds) == text


# --- over HTTP, in memory (frozen clock: exact numbers) --------------------------------------

async def frozen_proxy(proxy_factory: Any, **overrides: Any) -> Any:
    proxy = await proxy_factory(**overrides)
    proxy.app[ACCESS_KEY].throttle.limiter = MemoryLimiter(clock=lambda: 1000.0)
    return proxy


async def test_requests_per_minute(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await frozen_proxy(proxy_factory)
    key, _ = await add_key(proxy, rpm=2)
    url = proxy.make_url("/v1/chat/completions")
    for remaining in ("1", "0"):
        async with http.post(url, json=chat_body(), headers=bearer(key)) as resp:
            assert resp.status == 200
            assert resp.headers["x-ratelimit-limit-requests"] == "2"
            assert resp.headers["x-ratelimit-remaining-requests"] == remaining
    async with http.post(url, json=chat_body(), headers=bearer(key)) as resp:
        body = await resp.json()
        assert resp.status == 429
        assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == "rate_limit_error"
        assert "requests per minute (limit 2)" in body["error"]["message"]
        assert resp.headers["Retry-After"] == "30"
        assert resp.headers["x-ratelimit-remaining-requests"] == "0"
        assert resp.headers["x-ratelimit-reset-requests"] == "1m0s"
        assert "x-ratelimit-limit-tokens" not in resp.headers
    # other routes of a limited key carry the headers too, without consuming
    for _ in range(2):
        async with http.get(proxy.make_url("/v1/models"), headers=bearer(key)) as resp:
            assert resp.status == 200 and resp.headers["x-ratelimit-remaining-requests"] == "0"
    # an unlimited key of another user is unaffected and gets no headers
    other, _ = await add_key(proxy, user="bob")
    async with http.post(url, json=chat_body(), headers=bearer(other)) as resp:
        assert resp.status == 200 and not any(h in resp.headers for h in HEADERS)


async def test_tokens_estimated_then_corrected(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await frozen_proxy(proxy_factory)
    key, _ = await add_key(proxy, tpm=1000)
    body = chat_body("x" * 40 + scripted(words=3), max_tokens=500)  # estimate: prompt/4 + 500
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body, headers=bearer(key)) as resp:
        assert resp.status == 200
        usage = (await resp.json())["usage"]
        estimate = 1000 - int(resp.headers["x-ratelimit-remaining-tokens"])
    prompt_chars = len(body["messages"][0]["content"])
    assert estimate == -(-prompt_chars // 4) + 500
    async with http.get(proxy.make_url("/v1/models"), headers=bearer(key)) as resp:
        assert resp.headers["x-ratelimit-remaining-tokens"] == str(1000 - usage["total_tokens"])
        assert resp.headers["x-ratelimit-limit-tokens"] == "1000"


async def test_token_limit_refuses_with_tokens_retry_after(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await frozen_proxy(proxy_factory)
    key, _ = await add_key(proxy, tpm=600)
    url = proxy.make_url("/v1/chat/completions")
    async with http.post(url, json=chat_body(max_tokens=599), headers=bearer(key)) as resp:
        assert resp.status == 200
    async with http.post(url, json=chat_body(max_tokens=599), headers=bearer(key)) as resp:
        assert resp.status == 429
        assert "tokens per minute (limit 600)" in (await resp.json())["error"]["message"]
        assert int(resp.headers["Retry-After"]) >= 1


async def test_refused_upstream_call_refunds_the_estimate(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await frozen_proxy(proxy_factory)
    key, _ = await add_key(proxy, tpm=1000)
    body = chat_body(scripted(error=400), max_tokens=100)  # Gemini refuses before generating anything
    async with http.post(proxy.make_url("/v1/chat/completions"), json=body, headers=bearer(key)) as resp:
        assert resp.status == 400
    async with http.get(proxy.make_url("/v1/models"), headers=bearer(key)) as resp:
        assert resp.headers["x-ratelimit-remaining-tokens"] == "1000"


async def _first_event(resp: aiohttp.ClientResponse) -> bytes:
    line = b""
    while not line.startswith(b"data: "):
        line = await resp.content.readline()
    return line


async def test_concurrent_streams(proxy_factory: Any, http: aiohttp.ClientSession) -> None:
    proxy = await proxy_factory()
    key, _ = await add_key(proxy, max_streams=1)
    url = proxy.make_url("/v1/chat/completions")
    held = chat_body(scripted(words=30, chunks=5, fail_after=2, fail_mode="stall"), stream=True)
    first = await http.post(url, json=held, headers=bearer(key))
    assert first.status == 200
    await _first_event(first)
    async with http.post(url, json=chat_body(stream=True), headers=bearer(key)) as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "1"
        assert (await resp.json())["error"]["code"] == "concurrent_streams_exceeded"
    async with http.post(url, json=chat_body(), headers=bearer(key)) as resp:
        assert resp.status == 200  # buffered requests are not streams
    first.close()  # the client leaves: the slot must come back
    for _ in range(200):
        async with http.post(url, json=chat_body(stream=True), headers=bearer(key)) as resp:
            await resp.read()
            if resp.status == 200:
                break
        await asyncio.sleep(0.02)
    assert resp.status == 200


async def cut_stream_midway(proxy: Any, key: str, tokens_per_minute: int) -> Any:
    """A stream the client hangs up on after its first chunk; returns the metered row."""
    billed: asyncio.Queue[Any] = asyncio.Queue()
    proxy.app[METER_KEY].hooks.append(billed.put_nowait)  # runs after the app's own hooks
    body = chat_body("x" * 8000 + scripted(words=2000, chunks=40, chunk_delay_ms=50), stream=True)
    async with aiohttp.ClientSession() as client:
        resp = await client.post(proxy.make_url("/v1/chat/completions"), json=body, headers=bearer(key))
        assert resp.status == 200 and resp.headers["x-ratelimit-limit-tokens"] == str(tokens_per_minute)
        await _first_event(resp)
        await _first_event(resp)
        resp.close()  # the client leaves mid-stream
    rec = await asyncio.wait_for(billed.get(), timeout=10)
    assert rec.status == CLIENT_DISCONNECTED and rec.total_tokens > 2000
    return rec


async def test_disconnected_stream_counts_its_billed_tokens(proxy_factory: Any, http: aiohttp.ClientSession,
                                                            ledger_url: str) -> None:
    proxy = await frozen_proxy(proxy_factory, usage_db_url=ledger_url)
    key, _ = await add_key(proxy, tpm=100_000)
    rec = await cut_stream_midway(proxy, key, 100_000)
    async with http.get(proxy.make_url("/v1/models"), headers=bearer(key)) as resp:
        assert resp.headers["x-ratelimit-remaining-tokens"] == str(100_000 - rec.total_tokens)
