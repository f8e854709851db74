"""Budgets and credits under a burst: each request reserves its worst case before Gemini is called,
so concurrent requests cannot together spend more than the budget or the balance allows.

The stub answers "hi" with 10 prompt + 5 output tokens ($0.0000155 on gemini-2.5-flash); the
requests send max_tokens=10, so a reservation (1 estimated prompt token + 10 output tokens,
$0.0000253) covers the real cost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from aiproxy.access.budget import period_start
from aiproxy.appkeys import ACCESS_KEY, LEDGER_KEY, RESERVATIONS_KEY
from aiproxy.emulator.credits import STATE_KEY
from tests.access.conftest import add_key, bearer, delete_redis_keys
from tests.ledger.conftest import PG_ROOT, drop_schema
from tests.ledger.factories import CREDITS_API_KEY
from tests.ledger.gemini_stub import create_stub
from tests.ledger.test_billing_in_app import ONE_REQUEST, chat, start_proxy

REDIS = "redis://127.0.0.1:6379/0"
BURST = 20


@pytest.fixture
async def slow_upstream() -> AsyncIterator[TestServer]:
    server = TestServer(create_stub(chunks=5, gap=0.02), host="127.0.0.1")  # requests overlap
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"aiproxy-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    await delete_redis_keys(REDIS, prefix)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def counters_env(request: pytest.FixtureRequest, redis_prefix: str) -> dict[str, str]:
    """Budget counters in this process, or in Redis."""
    return {} if request.param == "memory" else {"REDIS_URL": REDIS, "REDIS_KEY_PREFIX": redis_prefix}


async def burst(proxies: list[TestServer], headers: dict[str, str], n: int = BURST) -> list[tuple[int, Any]]:
    async with aiohttp.ClientSession() as http:
        async def one(i: int) -> tuple[int, Any]:
            url = proxies[i % len(proxies)].make_url("/v1/chat/completions")
            async with http.post(url, json=chat(max_tokens=10), headers=headers) as resp:
                return resp.status, await resp.json()

        return await asyncio.gather(*(one(i) for i in range(n)))


def assert_refusals(results: list[tuple[int, Any]], status: int) -> int:
    """Every answer is a success or `status` insufficient_quota; returns the number of successes."""
    for code, body in results:
        if code != 200:
            assert code == status and body["error"]["code"] == body["error"]["type"] == "insufficient_quota"
    ok = sum(code == 200 for code, _ in results)
    assert 1 <= ok < len(results)
    return ok


async def spent_today(proxy: TestServer, user: str) -> Decimal:
    return await proxy.app[LEDGER_KEY].spent(user, period_start("day", datetime.now(UTC)))


async def test_burst_cannot_exceed_the_daily_budget(slow_upstream, ledger_url, counters_env) -> None:
    proxy = await start_proxy(slow_upstream, ledger_url, **counters_env)
    try:
        budget = ONE_REQUEST * 5
        key, _ = await add_key(proxy, user="alice", daily_budget=budget)
        ok = assert_refusals(await burst([proxy], bearer(key)), 429)
        spent = await spent_today(proxy, "alice")
        assert spent == ONE_REQUEST * ok and spent <= budget
        assert len(proxy.app[RESERVATIONS_KEY]) == 0  # every reservation ended
    finally:
        await proxy.close()


@pytest.fixture
async def shared_postgres() -> AsyncIterator[str]:
    schema = f"t_ledger_{uuid.uuid4().hex[:10]}"
    try:
        yield f"{PG_ROOT}?schema={schema}"
    finally:
        await drop_schema(schema)


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_instances_sharing_redis_cannot_overspend_together(slow_upstream, shared_postgres,
                                                                     redis_prefix) -> None:
    env = {"REDIS_URL": REDIS, "REDIS_KEY_PREFIX": redis_prefix}
    a = await start_proxy(slow_upstream, shared_postgres, **env)
    b = await start_proxy(slow_upstream, shared_postgres, **env)
    try:
        budget = ONE_REQUEST * 5
        key, _ = await add_key(a, user="alice", daily_budget=budget)
        await b.app[ACCESS_KEY].keys.refresh()  # the same key table (one database)
        ok = assert_refusals(await burst([a, b], bearer(key)), 429)
        spent = await spent_today(a, "alice")
        assert spent == ONE_REQUEST * ok and spent <= budget
    finally:
        await a.close()
        await b.close()


async def test_burst_cannot_overdraw_the_credits_balance(slow_upstream, credits_service, ledger_url) -> None:
    state = credits_service.app[STATE_KEY]
    balance = ONE_REQUEST * 5
    state.balances.update(alice=balance)
    proxy = await start_proxy(slow_upstream, ledger_url, CREDITS_SERVICE_URL=str(credits_service.make_url("")),
                              CREDITS_SERVICE_API_KEY=CREDITS_API_KEY, CREDITS_BALANCE_TTL="60")
    try:
        ok = assert_refusals(await burst([proxy], {}), 402)
        spent = await spent_today(proxy, "alice")
        assert spent == ONE_REQUEST * ok and spent <= balance
        for _ in range(200):  # every charge the outbox sends is paid: none refused for want of credit
            if len(state.charges) == ok:
                break
            await asyncio.sleep(0.02)
        assert len(state.charges) == ok and state.balances["alice"] == balance - spent
        assert not await proxy.app[LEDGER_KEY].charges("unpaid")
    finally:
        await proxy.close()
