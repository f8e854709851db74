"""The ledger and credits wired into the real app: rows per request, /v1/usage, pre-flight, charges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.app import create_app
from aiproxy.appkeys import LEDGER_KEY
from aiproxy.billing.record import UsageRecord
from aiproxy.config import load_settings
from aiproxy.emulator.credits import STATE_KEY
from tests.ledger.factories import CREDITS_API_KEY
from tests.ledger.gemini_stub import create_stub

ADMIN = "admin-token-for-tests"
# gemini-2.5-flash: $0.30 in / $2.50 out per 1M. The stub reports 10 prompt + 5 output tokens.
ONE_REQUEST = Decimal("0.0000155")


@pytest.fixture(name="upstream")  # other modules import it as `stub_upstream` (no clash with their argument)
async def stub_upstream() -> AsyncIterator[TestServer]:
    server = TestServer(create_stub(chunks=5, gap=0), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def start_proxy(upstream: TestServer, ledger_url: str, **env: str) -> TestServer:
    settings = load_settings({
        "GEMINI_API_KEY": "k", "GEMINI_BASE_URL": str(upstream.make_url("")).rstrip("/"),
        "USAGE_DB_URL": ledger_url, "ADMIN_TOKEN": ADMIN, **env,
    })  # fmt: skip
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()  # aiohttp 3.14 cancels handlers on disconnect by default
    return server


def chat(model: str = "gemini-2.5-flash", stream: bool = False, user: str = "alice", **extra: Any) -> dict[str, Any]:
    return {"model": model, "stream": stream, "user": user, "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_each_request_is_one_exact_row_and_reported(upstream, ledger_url) -> None:
    proxy = await start_proxy(upstream, ledger_url)
    try:
        async with aiohttp.ClientSession() as http:
            for i, stream in enumerate((False, True, True)):
                async with http.post(proxy.make_url("/v1/chat/completions"), json=chat(stream=stream),
                                     headers={"X-Request-ID": f"req-app-{i}"}) as resp:  # fmt: skip
                    assert resp.status == 200
                    text = await resp.text()
                    assert "[DONE]" in text if stream else '"usage"' in text
            async with http.get(proxy.make_url("/v1/usage"), params={"user": "alice"},
                                headers={"Authorization": f"Bearer {ADMIN}"}) as resp:  # fmt: skip
                total = (await resp.json())["total"]
        assert total == {"requests": 3, "prompt_tokens": 30, "completion_tokens": 15, "reasoning_tokens": 0,
                         "cached_tokens": 0, "total_tokens": 45, "cost_usd": str(ONE_REQUEST * 3),
                         "cache_hits": 0, "cache_savings_usd": "0"}  # fmt: skip
        rows = await proxy.app[LEDGER_KEY].rows()
        assert [r["client_request_id"] for r in rows] == ["req-app-0", "req-app-1", "req-app-2"]
        assert [bool(r["streamed"]) for r in rows] == [False, True, True]
        assert all(r["status"] == "ok" and not r["estimated"] and not r["price_fallback"] for r in rows)
    finally:
        await proxy.close()


async def test_credits_preflight_and_charge(upstream, credits_service, ledger_url) -> None:
    state = credits_service.app[STATE_KEY]
    state.balances.update(alice=Decimal("1"), poor=Decimal("0.00001"))
    proxy = await start_proxy(
        upstream, ledger_url,
        CREDITS_SERVICE_URL=str(credits_service.make_url("")), CREDITS_SERVICE_API_KEY=CREDITS_API_KEY,
        CREDITS_BALANCE_TTL="0",
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            # 1,000 output tokens at $2.50/1M is $0.0025 > $0.00001: refused before Gemini.
            async with http.post(proxy.make_url("/v1/chat/completions"),
                                 json=chat(user="poor", max_tokens=1000)) as resp:
                assert resp.status == 402
                assert (await resp.json())["error"]["code"] == "insufficient_quota"
            async with http.post(proxy.make_url("/v1/chat/completions"), json=chat(stream=True, max_tokens=1000),
                                 headers={"X-Request-ID": "req-billed"}) as resp:  # fmt: skip
                assert resp.status == 200
                server_id = resp.headers["X-Aiproxy-Request-ID"]
                await resp.read()
        for _ in range(100):
            if state.charges:
                break
            await asyncio.sleep(0.02)
        assert [(c["user_id"], c["amount"], c["key"]) for c in state.charges] == [("alice", ONE_REQUEST, server_id)]
        assert state.balances["alice"] == Decimal("1") - ONE_REQUEST
        ledger = proxy.app[LEDGER_KEY]
        assert [r["user_id"] for r in await ledger.rows()] == ["alice"]  # the refused one cost nothing
    finally:
        await proxy.close()


def slow_commits(ledger: Any, delay: float = 0.2) -> None:
    """Make every ledger commit take `delay` longer, as on a slow disk."""
    write = ledger._commits._write  # the test needs the commit itself to be slow

    async def slow(batch: list[UsageRecord]) -> None:
        await asyncio.sleep(delay)
        await write(batch)

    ledger._commits._write = slow


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
async def test_row_is_committed_before_the_last_byte(upstream, ledger_url, stream: bool) -> None:
    proxy = await start_proxy(upstream, ledger_url)
    try:
        slow_commits(proxy.app[LEDGER_KEY])
        async with aiohttp.ClientSession() as http:
            async with http.post(proxy.make_url("/v1/chat/completions"), json=chat(stream=stream),
                                 headers={"X-Request-ID": "req-first"}) as resp:  # fmt: skip
                raw = await resp.read()
        assert raw.endswith(b"data: [DONE]\n\n") if stream else raw.endswith(b"}")
        # No waiting: the moment the client has the whole response, the row is in the ledger.
        assert [r["client_request_id"] for r in await proxy.app[LEDGER_KEY].rows()] == ["req-first"]
    finally:
        await proxy.close()


async def test_client_gone_mid_stream_leaves_an_estimated_row(ledger_url) -> None:
    slow = TestServer(create_stub(chunks=100, gap=0.05), host="127.0.0.1")
    await slow.start_server()
    proxy = await start_proxy(slow, ledger_url)
    try:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(proxy.make_url("/v1/chat/completions"), json=chat(stream=True),
                                   headers={"X-Request-ID": "req-gone"})  # fmt: skip
            await resp.content.readuntil(b"\n\n")  # the first chunk, then the client leaves
            resp.close()
        ledger = proxy.app[LEDGER_KEY]
        for _ in range(100):
            rows = await ledger.rows()
            if rows:
                break
            await asyncio.sleep(0.02)
        (row,) = rows
        assert ((row["client_request_id"], row["status"], bool(row["estimated"]))
                == ("req-gone", "client_disconnected", True))
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0  # estimated from the text seen
        assert Decimal(str(row["cost_usd"])) > 0
    finally:
        await proxy.close()
        await slow.close()
