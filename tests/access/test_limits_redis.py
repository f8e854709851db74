"""The Redis limiter against the real Redis at 127.0.0.1:6379: atomic, shared, and its failure policy."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import aiohttp
import pytest

from aiproxy.access.limits import Limits
from aiproxy.access.limits_redis import LimiterUnavailable, RedisLimiter
from aiproxy.appkeys import ACCESS_KEY
from aiproxy.server.serve import free_port
from tests.access.conftest import add_key, bearer, chat_body, delete_redis_keys
from tests.access.test_limits import cut_stream_midway

pytestmark = pytest.mark.redis
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix(run_prefix: str) -> AsyncIterator[str]:
    yield run_prefix
    await delete_redis_keys(REDIS, run_prefix)


@pytest.fixture
async def limiter(prefix: str) -> AsyncIterator[RedisLimiter]:
    lim = RedisLimiter(REDIS, prefix, lease_seconds=60)
    yield lim
    await lim.close()


async def test_concurrent_acquires_are_atomic(limiter: RedisLimiter, prefix: str) -> None:
    other = RedisLimiter(REDIS, prefix, lease_seconds=60)  # a second instance on the same counters
    try:
        limits = Limits(rpm=10)
        results = await asyncio.gather(*(lim.acquire("k1", limits, 0) for lim in [limiter, other] * 25))
    finally:
        await other.close()
    assert sum(r.allowed for r in results) == 10
    refused = [r for r in results if not r.allowed]
    assert all(r.exceeded == "requests" and 0 < r.retry_after <= 6 for r in refused)


async def test_tokens_adjust_and_peek(limiter: RedisLimiter) -> None:
    limits = Limits(rpm=100, tpm=600)
    first = await limiter.acquire("k2", limits, 500)
    assert first.allowed and first.remaining_tokens in (100, 101) and first.remaining_requests == 99
    assert not (await limiter.acquire("k2", limits, 500)).allowed
    await limiter.adjust("k2", limits, -400)  # real use was 100
    peek = await limiter.peek("k2", limits)
    assert 500 <= peek.remaining_tokens <= 510 and peek.remaining_requests == 99
    await limiter.adjust("k2", limits, 2000)  # real use far above the estimate: debt
    state = await limiter.peek("k2", limits)
    assert state.remaining_tokens == 0 and state.reset_tokens > 60


async def test_stream_slots(limiter: RedisLimiter) -> None:
    assert await limiter.open_stream("k3", 2, "a")
    assert await limiter.open_stream("k3", 2, "b")
    assert not await limiter.open_stream("k3", 2, "c")
    await limiter.close_stream("k3", "a")
    assert await limiter.open_stream("k3", 2, "c")


async def test_expired_stream_lease_frees_its_slot(prefix: str) -> None:
    lim = RedisLimiter(REDIS, prefix, lease_seconds=0.001)  # an instance that died holding a slot
    try:
        assert await lim.open_stream("k4", 1, "dead")
        for _ in range(100):  # the lease expires on Redis' clock
            if await lim.open_stream("k4", 1, "new"):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("expired lease never freed its slot")
    finally:
        await lim.close()


async def test_two_proxies_share_the_counters(proxy_factory: Any, http: aiohttp.ClientSession, prefix: str) -> None:
    a = await proxy_factory(redis_url=REDIS, redis_key_prefix=prefix)
    b = await proxy_factory(redis_url=REDIS, redis_key_prefix=prefix)
    key, rec = await add_key(a, rpm=3)
    await b.app[ACCESS_KEY].store.insert(rec)
    await b.app[ACCESS_KEY].keys.refresh()
    statuses = []
    for server in (a, a, b, b):
        async with http.post(server.make_url("/v1/chat/completions"), json=chat_body(), headers=bearer(key)) as resp:
            statuses.append(resp.status)
            last = resp
    assert statuses == [200, 200, 200, 429]
    assert last.headers["x-ratelimit-limit-requests"] == "3" and int(last.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("policy,status", [("open", 200), ("closed", 503)])
async def test_redis_unreachable_policy(proxy_factory: Any, http: aiohttp.ClientSession, caplog: Any,
                                        policy: str, status: int) -> None:
    caplog.set_level(logging.WARNING, logger="aiproxy.access")
    proxy = await proxy_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_redis_failure=policy)
    key, _ = await add_key(proxy, rpm=5, max_streams=1)
    for stream in (False, True):
        async with http.post(proxy.make_url("/v1/chat/completions"), json=chat_body(stream=stream),
                             headers=bearer(key)) as resp:
            assert resp.status == status
            await resp.read()
            if status == 503:
                assert (await resp.json())["error"]["code"] == "rate_limiter_unavailable"
                assert resp.headers["Retry-After"] == "1"
    warned = [r for r in caplog.records if "rate limiter unreachable" in r.getMessage()]
    assert len(warned) == (1 if policy == "open" else 0)  # warned once, not per request


async def test_unreachable_raises_limiter_unavailable() -> None:
    lim = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", "x:", lease_seconds=1)
    try:
        with pytest.raises(LimiterUnavailable):
            await lim.acquire("k", Limits(rpm=1), 0)
    finally:
        await lim.close()


async def test_budget_alert_sent_once_across_instances(limiter: RedisLimiter, prefix: str, caplog: Any) -> None:
    from datetime import datetime
    from decimal import Decimal

    from aiproxy.access.budget import BudgetHold, Budgets, budgets_of, periods_at
    from aiproxy.access.budget_counters import MemoryBudgetCounters, to_units
    from aiproxy.access.keys import KeyRecord
    from aiproxy.billing.pricing import ModelPrice, PriceTable
    from aiproxy.billing.reservations import Reservations

    caplog.set_level(logging.WARNING, logger="aiproxy.access")
    other = RedisLimiter(REDIS, prefix, lease_seconds=60)
    rec = KeyRecord(id="key_x", key_hash="h", prefix="aip_", user="carol", daily_budget=Decimal("1"))

    async def spent(user: str, since: datetime) -> Decimal:
        return Decimal("0.5")

    try:
        for lim in (limiter, other):  # two instances, each with its own counters seeded at $0.50
            counters = MemoryBudgetCounters(ttl=60)
            free = PriceTable({}, ModelPrice(Decimal(0), Decimal(0)))
            budgets = Budgets(lambda: spent, counters, Reservations(), free, 0, once=lim.set_once)
            periods, cost = periods_at(datetime.now(UTC), budgets_of(rec)), to_units(Decimal("0.35"))
            assert await counters.reserve("carol", periods, cost, spent) is None
            await budgets.settle(BudgetHold(budgets, counters, rec, periods, cost), cost)  # → 85%
    finally:
        await other.close()
    assert len([r for r in caplog.records if "budget alert" in r.getMessage()]) == 1


async def test_disconnected_stream_counts_its_billed_tokens(proxy_factory: Any, http: aiohttp.ClientSession,
                                                            prefix: str, ledger_url: str) -> None:
    tpm = 6_000  # refills 100 tokens a second on Redis' clock
    proxy = await proxy_factory(redis_url=REDIS, redis_key_prefix=prefix, usage_db_url=ledger_url)
    key, _ = await add_key(proxy, tpm=tpm)
    started = time.monotonic()
    rec = await cut_stream_midway(proxy, key, tpm)
    async with http.get(proxy.make_url("/v1/models"), headers=bearer(key)) as resp:
        remaining = int(resp.headers["x-ratelimit-remaining-tokens"])
    refilled = math.ceil((time.monotonic() - started) * tpm / 60)
    assert max(0, tpm - rec.total_tokens) <= remaining <= max(0, tpm - rec.total_tokens) + refilled + 1


async def test_budget_counters_seed_from_the_ledger_and_are_shared(limiter: RedisLimiter, prefix: str) -> None:
    from datetime import datetime
    from decimal import Decimal

    from aiproxy.access.budget import periods_at
    from aiproxy.access.budget_counters import Refusal
    from aiproxy.access.budget_counters_redis import RedisBudgetCounters

    reads: list[str] = []

    async def ledger_spent(user: str, since: datetime) -> Decimal:
        reads.append(user)
        return Decimal("0.000000401")  # 401 nano-USD already in the ledger

    other = RedisLimiter(REDIS, prefix, lease_seconds=60)
    try:
        a, b = RedisBudgetCounters(limiter.client, prefix), RedisBudgetCounters(other.client, prefix)
        periods = periods_at(datetime.now(UTC), [("day", Decimal("0.000001")), ("month", Decimal("0.00001"))])
        assert await a.reserve("dave", periods, 300, ledger_spent) is None  # 401 + 300 <= 1000
        assert await b.reserve("dave", periods, 300, ledger_spent) == Refusal(periods[0], 401, 300)  # 1001 > 1000
        assert reads == ["dave", "dave"]  # seeded once per period, then shared
        assert await b.settle("dave", periods, 300, 250) == [651, 651]  # the real cost replaces the reservation
        assert await b.reserve("dave", periods, 349, ledger_spent) is None  # 651 + 349 = 1000: exactly fits
        assert await a.settle("dave", periods, 349, 0) == [651, 651]  # released
    finally:
        await other.close()
